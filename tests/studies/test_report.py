"""``autotune report``: tables, figures and a page that a real browser renders whole.

The study data is a real one: a two-worker Ray study on two lab VMs, copied from its
storage into ``data/lab-study.db`` (the report reads nothing but the storage).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.image
import optuna
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data" / "lab-study.db"
STUDY = "lab-ray2"
CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken', broken.join(','));
});
</script></body>"""
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    db = base / "study.db"
    shutil.copyfile(DATA, db)
    out = base / "out"
    res = subprocess.run([sys.executable, "-m", "autotune.cli", "report", STUDY, "--storage",
                          f"sqlite:///{db}", "-o", str(out)], capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"wrote {out / 'index.html'}" in res.stdout
    return out


def _images(page: Path) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


def test_tables_hold_every_trial_and_pair(report_dir: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{report_dir.parent / 'study.db'}")
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = pd.read_parquet(report_dir / "trials.parquet")
    assert sorted(trials["trial"]) == [t.number for t in study.trials]
    pairs = pd.read_csv(report_dir / "pairs.csv")
    assert len(pairs) == sum(len(t.user_attrs.get("autotune.pairs", [])) for t in study.trials)
    row = pairs.iloc[0]
    assert row["ratio_throughput"] == pytest.approx(
        row["candidate_throughput"] / row["baseline_throughput"])
    assert trials["worker"].nunique() == 2  # the two Ray workers, one lab each
    assert set(trials["param.net.core.netdev_budget"]) == {
        t.params["net.core.netdev_budget"] for t in study.trials}


def test_every_image_exists_and_decodes(report_dir: Path) -> None:
    names = _images(report_dir / "index.html")
    assert {"history.png", "importance.png", "pareto.png", "knobs.png", "noise.png"} <= set(names)
    for name in names:
        pixels = matplotlib.image.imread(report_dir / name)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0


def test_headless_chromium_renders_the_page_with_every_image_loaded(report_dir: Path) -> None:
    check = report_dir / "check.html"
    check.write_text((report_dir / "index.html").read_text().replace("</body>", CHECK))
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        dom = subprocess.run([*CHROMIUM, f"--user-data-dir={profile}", "--virtual-time-budget=8000",
                              "--dump-dom", check.as_uri()],
                             capture_output=True, text=True, timeout=120)
        shot = report_dir / "screenshot.png"
        subprocess.run([*CHROMIUM, f"--user-data-dir={profile}", "--window-size=1200,1600",
                        f"--screenshot={shot}", (report_dir / "index.html").as_uri()],
                       capture_output=True, text=True, timeout=120, cwd=report_dir)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stderr[-500:]
    assert f'data-images="{len(_images(report_dir / "index.html"))}"' in body.group(0)
    assert 'data-broken=""' in body.group(0)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1200) and pixels.std() > 0.05
