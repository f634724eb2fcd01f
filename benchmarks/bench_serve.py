"""Load on `segnext serve`: N concurrent clients on loopback for a fixed time; latency, throughput,
errors and the server's memory before and after.

    python benchmarks/bench_serve.py --checkpoint RUN/final_model --images data/camvid/images/val \
        --clients 8 --seconds 60 --out benchmarks/results/serve_load.json

The server is started as its own process (`segnext serve`, 127.0.0.1, a free port) and given the
machine as a user would; each client posts images from --images in turn (or generated 480x360
scenes) to /predict and waits for the label PNG. Reported: requests per second, p50 / p95 / max
latency, every answer that was not 200 (there must be none), and the server's resident memory
(VmRSS) after start-up and warm-up, and at the end (it must stay flat). Then what the server counted
itself (GET /metrics): its requests (warm-up included: they must add up to the clients' count), the
images per forward pass (how full the batches were) and the seconds of a forward pass.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def images_to_send(folder, count: int = 16):
    if folder:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
        return [(p.name, p.read_bytes()) for p in files]
    rng = np.random.default_rng(0)
    out = []
    for index in range(count):
        image = np.zeros((360, 480, 3), np.uint8)
        image[:180] = rng.integers(0, 256, 3)
        image[180:] = rng.integers(0, 256, 3)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        out.append((f"scene_{index}.jpg", buffer.getvalue()))
    return out


def server_counts(text: str) -> dict:
    """The totals of the server's /metrics page: requests answered, forward passes, their mean images
    and seconds."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    passes = totals.get("segnext_batch_images_count", 0.0)
    return {"requests": totals.get("segnext_requests_total", 0.0), "forward_passes": passes,
            "mean_batch_images": totals.get("segnext_batch_images_sum", 0.0) / passes if passes else float("nan"),
            "mean_model_seconds": totals.get("segnext_model_seconds_sum", 0.0) / passes if passes else float("nan")}


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="model to serve (default: a random SegNeXt-T, 11 classes)")
    parser.add_argument("--onnx", help="serve this ONNX model instead")
    parser.add_argument("--images", help="folder of images to post (default: generated 480x360 scenes)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out")
    args = parser.parse_args()

    temporary = tempfile.TemporaryDirectory()
    if not args.checkpoint and not args.onnx:
        import segnext

        model = segnext.create_model("segnext_t", 11)
        model.config.test_settings = segnext.TestConfig(img_scale=None).to_dict()
        args.checkpoint = str(segnext.save_model(model, Path(temporary.name) / "model"))
    port = free_port()
    source = ["--onnx", args.onnx] if args.onnx else ["--checkpoint", args.checkpoint]
    server = subprocess.Popen([sys.executable, "-m", "segnext.cli.main", "serve", *source, "--port", str(port),
                               "--batch-size", str(args.batch_size), "--cache-mb", "0"],  # every request computed
                              cwd=REPO, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    payloads = images_to_send(args.images)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                said = server.stderr.read() if server.poll() is not None else ""
                raise SystemExit(f"the server did not start: {said}")
            time.sleep(0.2)
        with httpx.Client(timeout=120) as client:  # warm-up: every image once
            for name, data in payloads:
                assert client.post(f"{url}/predict", files={"image": (name, data)}).status_code == 200
        rss_start = rss_mb(server.pid)
        latencies, statuses = [], []
        lock = threading.Lock()
        stop = time.time() + args.seconds

        def client_loop(offset: int) -> None:
            with httpx.Client(timeout=120) as client:
                index = offset
                while time.time() < stop:
                    name, data = payloads[index % len(payloads)]
                    index += 1
                    start = time.perf_counter()
                    try:
                        status = client.post(f"{url}/predict", files={"image": (name, data)}).status_code
                    except httpx.HTTPError as error:
                        status = f"{type(error).__name__}"
                    with lock:
                        latencies.append(time.perf_counter() - start)
                        statuses.append(status)

        started = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        rss_series = []  # (seconds, MB) every tenth of the run: growth that levels off is the allocator's
        while any(thread.is_alive() for thread in threads):
            time.sleep(args.seconds / 10)
            rss_series.append((round(time.perf_counter() - started, 1), round(rss_mb(server.pid), 1)))
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        rss_end = rss_mb(server.pid)
        health = httpx.get(f"{url}/health", timeout=10).json()
        counted = server_counts(httpx.get(f"{url}/metrics", timeout=10).text)
    finally:
        server.terminate()
        server.wait(30)
        temporary.cleanup()
    errors = [s for s in statuses if s != 200]
    ordered = sorted(latencies)
    result = dict(clients=args.clients, seconds=elapsed, requests=len(statuses), errors=len(errors),
                  error_kinds=sorted({str(s) for s in errors}), requests_per_s=len(statuses) / elapsed,
                  latency_p50_s=statistics.median(ordered), latency_p95_s=ordered[int(0.95 * (len(ordered) - 1))],
                  latency_max_s=ordered[-1], rss_mb_after_warmup=rss_start, rss_mb_end=rss_end,
                  rss_mb_during=rss_series,
                  batch_size=args.batch_size, model=health["model"], backend=health["backend"],
                  device=health["device"], image=payloads[0][0], cpu_count=os.cpu_count(), command=" ".join(sys.argv),
                  server_counted=counted, warmup_requests=len(payloads))
    print(f"{args.clients} clients for {elapsed:.0f} s against {health['model']} ({health['backend']}, "
          f"{health['device']}): {len(statuses)} requests, {result['requests_per_s']:.2f}/s, "
          f"p50 {1e3 * result['latency_p50_s']:.0f} ms, p95 {1e3 * result['latency_p95_s']:.0f} ms, "
          f"max {1e3 * result['latency_max_s']:.0f} ms, errors {len(errors)}; server RSS {rss_start:.0f} MB after "
          f"warm-up, {rss_end:.0f} MB at the end; during the run: "
          + ", ".join(f"{mb:.0f}" for _, mb in rss_series))
    print(f"the server's /metrics: {counted['requests']:.0f} requests ({len(payloads)} of them the warm-up), "
          f"{counted['forward_passes']:.0f} forward passes of {counted['mean_batch_images']:.2f} images on average, "
          f"{1e3 * counted['mean_model_seconds']:.0f} ms each")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
