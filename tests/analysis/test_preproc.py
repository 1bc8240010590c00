"""Config-conditional definitions: the seed is the definition the build compiles."""

from __future__ import annotations

from pathlib import Path

from analysis import preproc, seeds

SCHED_H = """\
#ifdef CONFIG_PREEMPT_RT
# define SCHED_NR_MIGRATE_BREAK 8
#else
# define SCHED_NR_MIGRATE_BREAK 32
#endif
#if defined(CONFIG_A) && !IS_ENABLED(CONFIG_B)
int a_not_b;
#elif FOO > 2
int unknown;
#else
int neither;
#endif
"""


def test_dead_lines_follow_the_config() -> None:
    lines = SCHED_H.splitlines()
    assert preproc.dead_lines(lines, frozenset({"CONFIG_A"})) == {1, 8, 10}
    # an unknown condition (FOO > 2) keeps its branch and every later one live
    assert preproc.dead_lines(lines, frozenset({"CONFIG_PREEMPT_RT", "CONFIG_B"})) == {3, 6}


def test_seed_is_the_compiled_definition(tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "sched.h").write_text(SCHED_H)
    config = tmp_path / "config"
    config.write_text("CONFIG_SMP=y\n# CONFIG_PREEMPT_RT is not set\n")
    seed = seeds.resolve("SCHED_NR_MIGRATE_BREAK", "kernel/sched.h", tmp_path, 250,
                         enabled=preproc.enabled_options(config))
    assert (seed.line, seed.default) == (4, 32)
    rt = seeds.resolve("SCHED_NR_MIGRATE_BREAK", "kernel/sched.h", tmp_path, 250,
                       enabled=frozenset({"CONFIG_PREEMPT_RT"}))
    assert (rt.line, rt.default) == (2, 8)
