#!/bin/busybox sh
# PID 1 of the lab VM (kernel_runtime/lab/image.py puts it at /init).
# Mounts what the agent and the SIE backend expect, loads the network modules listed at
# build time, then keeps the agent running. It loads nothing else: the SIE backend loads
# its own module and BPF objects through the agent.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /var/lib/autotune /var/cache/autotune /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
chmod 1777 /tmp
hostname autotune-lab

while read -r module; do
  insmod "$module" || echo "autotune-init: insmod $module failed" > /dev/kmsg
done < /etc/autotune/modules

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# An interactive root shell on the virtio console, for 'autotune lab shell'.
if [ -e /dev/hvc0 ]; then
  (while true; do setsid sh -c 'exec sh -i </dev/hvc0 >/dev/hvc0 2>&1'; sleep 1; done) &
fi

export PYTHONPATH=/opt/autotune/site PYTHONDONTWRITEBYTECODE=1
export AUTOTUNE_STATE_DIR=/var/lib/autotune AUTOTUNE_CACHE_DIR=/var/cache/autotune
while true; do
  /usr/bin/python3.11 -m kernel_runtime.agent --listen 0.0.0.0:7070 \
    --token-file /etc/autotune/token 2>>/dev/console
  echo "autotune-init: agent exited with $?; restarting" > /dev/kmsg
  sleep 1
done
