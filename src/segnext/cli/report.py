"""`segnext report RUN_DIR`: redraw a training run's report (report.png, report.html) from its files."""

from __future__ import annotations

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="redraw a training run's report (PNG and a self-contained HTML page) from its files",
        description="Draw RUN_DIR/report.png and RUN_DIR/report.html again from what the run wrote (log.jsonl, "
                    "results.json, config.yaml, report_data/): the stop reason, the final metrics next to the "
                    "majority-class baseline, which evaluations used how many images, loss, learning-rate and "
                    "mIoU curves, per-class IoU, the confusion matrix and sample predictions with an error map. "
                    "Works while the run is going too (curves only until it ends). The HTML embeds every image: "
                    "one file to share. The PNG and the charts need matplotlib (pip install 'segnext[plot]').",
        **with_examples("segnext report segnext-demo",
                        "segnext report work_dirs/segnext_t_ade --out-dir /tmp/to-share"))
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the folder of a training run (its --work-dir)")
    parser.add_argument("--out-dir", "--out", help="where report.png and report.html go (default RUN_DIR)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..train.report import run_folder, write_report

    written = write_report(run_folder(args.run_dir), args.out_dir)
    for path in (written.png, written.html):
        if path is not None:
            print(f"Report written to {path}")
    return 0
