"""`winner ner tag --workers N`: tag byte-range chunks of the input on Ray actors, resumably.

The driver cuts the input into chunks on sentence boundaries (winner.data.stream.plan_chunks), ships each
chunk's bytes and the model's files through Ray's object store (so workers need neither the input nor the model
on their disk), and writes every chunk's tagged body atomically into OUT's parts directory as it comes back.
While a local Ray starts (seconds in which no worker can tag), the driver tags chunks from the front of the
queue itself, on one thread, and stops taking new ones once every worker has loaded the model.
A re-run with the same inputs, model and format keeps the finished chunks and tags only the others. When all
are done their bodies are joined in input order into OUT, which is then byte for byte what one process writes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from winner.core import runtime
from winner.core.atomic import open_atomic, write_text_atomic
from winner.core.console import console, progress_bar
from winner.data.stream import STDIN, Chunk, Source, plan_chunks, read_chunk
from winner.errors import WinnerError
from winner.heads.model_io import resolve_model_dir
from winner.heads.tagger import Tagger, checked_consistency, reads_documents
from winner.heads.tagging import TagCounts, tag_chunk, writer_class
from winner.scale.cluster import connect, require_ray, threads_per_worker

IN_FLIGHT_PER_WORKER = 2
TAIL_CHUNKS = 2  # the input's last TAIL_CHUNKS chunks' worth of bytes is cut smaller (plan_chunks' tail)
DRIVER = "driver"  # the node name the driver's own chunks are counted under


@dataclass(frozen=True)
class RayRun:
    """What every chunk of one `tag_on_ray` call shares: the model, its inputs, where parts go, how to write."""

    model: Path
    sources: list[Source]
    parts: Path
    output_format: str
    consistency: str | None  # replaces the model's own vote; None keeps it

    def tag(self, tagger: Tagger, c: Chunk, node: str) -> dict:
        """Tag chunk `c` with `tagger` (this process's) into a result as a worker returns it."""
        s = self.sources[c.source]
        return _tag_one(tagger, c.index, read_chunk(s, c), s, self.output_format, c.start == 0, node)

    def save(self, result: dict) -> None:
        """A chunk's body, then its done-file: a chunk counts as finished only once both are on disk."""
        write_text_atomic(_body_path(self.parts, result["index"], writer_class(self.output_format).suffix),
                          result["body"])
        write_text_atomic(_done_path(self.parts, result["index"]),
                          json.dumps({k: result[k] for k in ("sentences", "tokens", "node", "pid")}))


class TagWorker:
    """A Ray actor: loads the model once (from the files it is sent), then tags chunks."""

    def __init__(self, model_files: dict[str, bytes], threads: int, consistency: str | None):
        os.environ["WINNER_THREADS"] = str(threads)  # read when the model's first kernel starts the core
        with tempfile.TemporaryDirectory(prefix="winner-model-") as d:
            for name, data in model_files.items():
                Path(d, name).write_bytes(data)
            self.tagger = Tagger.load(d, consistency)

    def ready(self) -> bool:
        """Returns once the constructor (the model's load) has run."""
        return True

    def tag(self, index: int, data: bytes, source: Source, output_format: str, file_start: bool) -> dict:
        import ray

        return _tag_one(self.tagger, index, data, source, output_format, file_start,
                        ray.get_runtime_context().get_node_id())


def _tag_one(tagger: Tagger, index: int, data: bytes, source: Source, output_format: str, file_start: bool,
             node: str) -> dict:
    out = io.StringIO()
    counts = tag_chunk(tagger, data, source, out, output_format, file_start)
    return {"index": index, "body": out.getvalue(), "sentences": counts.sentences, "tokens": counts.tokens,
            "node": node, "pid": os.getpid()}


class DriverTagging(threading.Thread):
    """Tags chunks from the front of the shared queue in the driver until stop() (the workers are ready)."""

    def __init__(self, job: RayRun, queue: deque, lock: threading.Lock):
        super().__init__(name="winner-driver-tagging", daemon=True)
        self.job, self.queue, self.lock = job, queue, lock
        self.done = 0
        self.error: BaseException | None = None
        self._stop_taking = threading.Event()

    def stop(self) -> None:
        self._stop_taking.set()

    def run(self) -> None:
        try:
            runtime.set_threads(1)  # numba's thread count is per thread: one core while the workers start
            tagger = Tagger.load(self.job.model, self.job.consistency)
            while not self._stop_taking.is_set():
                with self.lock:
                    if not self.queue:
                        return
                    c = self.queue.popleft()
                self.job.save(self.job.tag(tagger, c, DRIVER))
                self.done += 1
        except BaseException as e:  # noqa: BLE001 — handed to the main thread, which raises it
            self.error = e


def plan(sources: list[Source], chunk_bytes: int, documents: bool) -> list[Chunk]:
    """The chunks of a run: `chunk_bytes` pieces, the last TAIL_CHUNKS pieces' worth cut smaller; with
    `documents` (a model with document codes), CoNLL files cut only between documents."""
    return plan_chunks(sources, chunk_bytes, tail_bytes=TAIL_CHUNKS * chunk_bytes, documents=documents)


def parts_dir(out: str) -> Path:
    p = Path(out)
    return p.with_name(f".{p.name}.parts")


def _manifest(run: RayRun, chunks: list[Chunk]) -> dict:
    """What the parts were made from: a re-run reuses them only if all of it is unchanged."""

    def stamp(path: Path) -> list:
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]

    return {"model": [stamp(f) for f in sorted(run.model.iterdir()) if f.is_file()],
            "inputs": [[*stamp(Path(s.path)), s.format, s.paragraphs] for s in run.sources],
            "format": run.output_format, "consistency": run.consistency,
            "chunks": [asdict(c) for c in chunks]}


def _prepare_parts(parts: Path, manifest: dict) -> None:
    path = parts / "manifest.json"
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")) == manifest:
        return
    shutil.rmtree(parts, ignore_errors=True)
    write_text_atomic(path, json.dumps(manifest))


def _done_path(parts: Path, index: int) -> Path:
    return parts / f"part-{index:06d}.done.json"


def _body_path(parts: Path, index: int, suffix: str) -> Path:
    return parts / f"part-{index:06d}{suffix}"


def tag_on_ray(model_dir: str | Path, sources: list[Source], out: str, output_format: str, workers: int | None,
               address: str | None, chunk_bytes: int, quiet: bool = False, driver_tags: bool = True,
               consistency: str | None = None) -> TagCounts:
    """Tag `sources` into `out` on Ray workers (and in this process while a local Ray starts, if driver_tags);
    returns the counts of the whole output. `consistency` replaces the model's own."""
    t0 = time.perf_counter()
    if out == STDIN:
        raise WinnerError("--workers needs --out FILE: finished chunks are kept beside it so that a re-run resumes")
    require_ray()  # before any work: without Ray, a one-line error naming the extra
    writer = writer_class(output_format)
    if consistency is not None:
        checked_consistency(consistency)
    run = RayRun(resolve_model_dir(model_dir), sources, parts_dir(out), output_format, consistency)
    chunks = plan(sources, chunk_bytes, reads_documents(run.model, consistency))
    parts = run.parts
    _prepare_parts(parts, _manifest(run, chunks))
    todo = [c for c in chunks if not _done_path(parts, c.index).is_file()]
    if not quiet:
        console.print(f"{len(chunks)} chunks, {len(chunks) - len(todo)} already done, {len(todo)} to tag")
    nodes: Counter[str] = Counter()
    ray_started: ModuleType | None = None
    if todo:
        nodes, ray_started = _run_chunks(run, todo, workers, address, quiet,
                                         driver_tags and address is None)
    with ThreadPoolExecutor(1, thread_name_prefix="winner-join") as pool:
        joined = pool.submit(_join, out, writer, parts, chunks)
        if ray_started is not None:
            ray_started.shutdown()  # while the parts are joined; Ray's exit hook would first sleep half a second
        counts = joined.result()
    shutil.rmtree(parts)
    counts.seconds = time.perf_counter() - t0
    if not quiet and nodes:
        console.print("chunks per node: " + ", ".join(f"{n[:12]} {k}" for n, k in sorted(nodes.items())))
    return counts


def _join(out: str, writer, parts: Path, chunks: list[Chunk]) -> TagCounts:
    """Write the chunks' bodies into `out` in input order, atomically; returns the counts of the whole output."""
    counts = TagCounts()
    with open_atomic(out) as f:
        writer.join(_bodies(parts, chunks, writer.suffix, counts), f)
    return counts


def _bodies(parts: Path, chunks: list[Chunk], suffix: str, counts: TagCounts):
    for c in chunks:
        done = json.loads(_done_path(parts, c.index).read_text(encoding="utf-8"))
        counts.add(TagCounts(done["sentences"], done["tokens"]))
        yield _body_path(parts, c.index, suffix).read_text(encoding="utf-8"), done["sentences"]


def _run_chunks(run: RayRun, todo: list[Chunk], workers: int | None, address: str | None, quiet: bool,
                driver_tags: bool) -> tuple[Counter[str], ModuleType | None]:
    """Tag the chunks in `todo` on Ray actors (and, if driver_tags, in the driver until the actors are ready),
    saving each as it arrives; returns chunks done per node, and Ray if this call started it (else None)."""
    queue, lock = deque(todo), threading.Lock()
    driver = DriverTagging(run, queue, lock) if driver_tags else None
    if driver is not None:
        driver.start()
    try:
        nodes, ray_started = _run_on_workers(run, queue, lock, driver, workers, address, quiet)
    finally:
        if driver is not None:
            driver.stop()
            driver.join()
    if driver is not None:
        if driver.error is not None:
            raise driver.error
        if driver.done:
            nodes[DRIVER] += driver.done
    return nodes, ray_started


def _run_on_workers(run: RayRun, queue: deque, lock: threading.Lock, driver: DriverTagging | None,
                    workers: int | None, address: str | None, quiet: bool) -> tuple[Counter[str], ModuleType | None]:
    ray, cpus, started = connect(address, workers)
    ray_started = ray if started else None
    with lock:
        left = len(queue)
    if left == 0:  # the driver took every chunk while Ray started
        return Counter(), ray_started
    n_workers = min(workers or cpus, left)
    threads = threads_per_worker(cpus, n_workers)
    files = ray.put({f.name: f.read_bytes() for f in run.model.iterdir() if f.is_file()})
    actor = ray.remote(TagWorker).options(num_cpus=threads)
    pool = [actor.remote(files, threads, run.consistency) for _ in range(n_workers)]
    ray.get([w.ready.remote() for w in pool])
    if driver is not None:
        driver.stop()
        if driver.error is not None:
            raise driver.error
    pending: dict = {}
    nodes: Counter[str] = Counter()

    def submit(worker) -> None:
        with lock:
            if not queue:
                return
            c = queue.popleft()
        s = run.sources[c.source]
        pending[worker.tag.remote(c.index, read_chunk(s, c), s, run.output_format, c.start == 0)] = worker

    for worker in pool:
        for _ in range(IN_FLIGHT_PER_WORKER):
            submit(worker)
    label = f"tagging on {n_workers} Ray workers x {threads} threads (chunks)"
    with progress_bar(label, len(pending) + len(queue), quiet) as step:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            worker = pending.pop(ref)
            result = _result(ray, ref)
            run.save(result)
            nodes[result["node"]] += 1
            step(1)
            submit(worker)
    return nodes, ray_started


def _result(ray, ref) -> dict:
    """A chunk's result; a WinnerError raised on a worker (a malformed file) comes back as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, WinnerError):
            raise WinnerError(str(cause)) from None
        raise
