"""An IMDB-layout archive at IMDB's lengths, served from a local mirror, to time document-length
training end to end (the real IMDB is not reachable from these machines).

Each review joins Rotten Tomatoes snippets of one movie and one verdict (pos = fresh, neg =
rotten) until it reaches a length drawn from IMDB's profile (log-normal words, median 230,
clipped at 2,500). Snippets repeat across reviews, so accuracy on it means little: it measures
speed at IMDB's lengths through the real download, prepare, train and evaluate stages.

    python -m benchmarks.imdb_mirror --reviews 3000 --serve 8765
    # then, in the project, the README's IMDB command with the printed url and md5
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import math
import random
import tarfile
from collections import defaultdict
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ARCHIVE = "aclImdb_v1.tar.gz"


def snippets_by_verdict(examples: Path) -> dict[tuple[str, str], list[str]]:
    """(movie, fresh|rotten) -> its snippets, from the sentiment task's raw examples."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    with examples.open(encoding="utf-8") as fh:  # not splitlines(): texts hold U+2028
        rows = [json.loads(line) for line in fh if line.strip()]
    for row in rows:
        groups[(row["group"], row["label"])].append(row["text"])
    return groups


def reviews(groups: dict[tuple[str, str], list[str]], count: int, seed: int
            ) -> list[tuple[str, str]]:
    """`count` (text, pos|neg) reviews of IMDB-like word counts, half of each label."""
    rng = random.Random(seed)
    keys = {label: [k for k in groups if k[1] == label] for label in ("fresh", "rotten")}
    out = []
    for i in range(count):
        verdict = ("fresh", "rotten")[i % 2]
        words = min(2500, max(10, round(math.exp(math.log(230) + 0.75 * rng.gauss(0, 1)))))
        pool = groups[rng.choice(keys[verdict])]
        text: list[str] = []
        while sum(len(s.split()) for s in text) < words:
            text.append(rng.choice(pool))
        out.append((" ".join(text), "pos" if verdict == "fresh" else "neg"))
    return out


def build(examples: Path, count: int, out: Path, seed: int = 0) -> tuple[Path, str]:
    """Write the archive (half train, half test, aclImdb file names); returns it and its md5."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i, (text, label) in enumerate(reviews(snippets_by_verdict(examples), count, seed)):
            split = "train" if i < count // 2 else "test"
            rating = 8 + i % 3 if label == "pos" else 1 + i % 4
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_{rating}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out.mkdir(parents=True, exist_ok=True)
    path = out / ARCHIVE
    path.write_bytes(buf.getvalue())
    return path, hashlib.md5(buf.getvalue()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, default=Path("data/sentiment/raw/examples.jsonl"),
                    help="the sentiment task's raw examples (dvc repro download@sentiment)")
    ap.add_argument("--reviews", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/rnnbench-imdb-mirror"))
    ap.add_argument("--serve", type=int, metavar="PORT", help="serve it on 127.0.0.1:PORT")
    args = ap.parse_args()
    path, md5 = build(args.examples, args.reviews, args.out)
    print(f"{path}: {args.reviews} reviews, md5 {md5}")
    if args.serve:
        url = f"http://127.0.0.1:{args.serve}/{ARCHIVE}"
        print(f"serving {url} (Ctrl-C stops)\n"
              f"dvc exp run -S task.sentiment.data.dataset=imdb -S \"+task.sentiment.data.source="
              f"{{kind: url, url: '{url}', md5: {md5}}}\"", flush=True)
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(args.out))
        ThreadingHTTPServer(("127.0.0.1", args.serve), handler).serve_forever()


if __name__ == "__main__":
    main()
