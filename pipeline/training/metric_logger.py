"""Training curves and sample grids through DVCLive, resumable across kills.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.files import leftovers, replace_folder


class MetricLogger:
    """DVCLive on the main rank; a no-op elsewhere. Never rewrites dvc.yaml.

    DVC deletes a stage's DVCLive folder before re-running it, so a resumed run would lose
    the curves of the steps before its checkpoint. `snapshot` keeps a copy of the folder
    beside each checkpoint and `restore` puts it back when the run resumes, so the curves
    of a killed and re-run stage are those of a run never interrupted.
    """

    def __init__(self, directory: str | Path | None, enabled: bool = True):
        self.live = None
        self.directory = Path(directory) if directory is not None else None
        if directory is not None and enabled:
            self.live = self._open(resume=False)

    def _open(self, resume: bool):
        from dvclive import Live

        return Live(str(self.directory), dvcyaml=False, save_dvc_exp=False, report=None, resume=resume)

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.live is None:
            return
        self.live.step = step
        for k, v in values.items():
            self.live.log_metric(k, float(v))
        self.live.next_step()

    def image(self, name: str, image) -> None:
        if self.live is not None:
            self.live.log_image(name, image)

    def summary(self, values: dict[str, float]) -> None:
        if self.live is not None:
            self.live.summary.update(values)

    def snapshot(self, dest: Path) -> None:
        """Copy the DVCLive folder to `dest`, replacing it whole."""
        if self.live is None or not self.directory.is_dir():
            return
        import shutil

        with replace_folder(dest) as tmp:
            shutil.copytree(self.directory, tmp, dirs_exist_ok=True)

    def restore(self, src: Path, step: int) -> None:
        """Put a snapshot back and continue logging after `step` (rows past it are dropped:
        a snapshot can be a few steps newer than the checkpoint it sits beside)."""
        if self.live is None:
            return
        import shutil

        if not src.is_dir():  # killed while swapping a new snapshot in: the previous one was moved aside
            aside = [p / src.name for p in leftovers(src.parent, src.name) if (p / src.name).is_dir()]
            src = aside[-1] if aside else src
        if not src.is_dir():
            return  # a checkpoint from before snapshots existed: curves start here
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.copytree(src, self.directory)
        for tsv in self.directory.rglob("*.tsv"):
            lines = tsv.read_text().splitlines()
            col = lines[0].split("\t").index("step") if lines else 0
            kept = lines[:1] + [ln for ln in lines[1:] if int(ln.split("\t")[col]) <= step]
            tsv.write_text("\n".join(kept) + "\n")
        self.live = self._open(resume=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
