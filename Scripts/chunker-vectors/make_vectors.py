#!/usr/bin/env python3
"""Writes Tests/UnixFSTests/Vectors/chunker-cuts.json: the chunk lengths Kubo's splitters
(boxo/chunker: rabin via whyrusleeping/chunker, buzhash) give for reproducible inputs.

    python3 Scripts/chunker-vectors/make_vectors.py ORACLE > Tests/UnixFSTests/Vectors/chunker-cuts.json

ORACLE is a program that reads a file on stdin and prints the comma-separated chunk lengths for
the chunker spec given as its argument, using Kubo's own chunker code: oracle.go beside this
script (build it with Go against github.com/ipfs/boxo; the committed vectors were made with
Debian's Go 1.19 and, there being no module proxy on that machine, the same two source files of
boxo's buzhash and whyrusleeping/chunker's rabin compiled locally behind the same interface).
Inputs are segments, each either zeros
or the little-endian bytes of successive SplitMix64 outputs from a seed (`text` maps each
output to one of the bytes "abcd"), so the Swift tests rebuild them without any file.
"""
import json
import subprocess
import sys

MASK = (1 << 64) - 1


def splitmix(seed):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def segment(kind, seed, size):
    if kind == "zeros":
        return bytes(size)
    out = bytearray()
    gen = splitmix(seed)
    if kind == "random":
        while len(out) < size:
            out += next(gen).to_bytes(8, "little")
    elif kind == "text":
        while len(out) < size:
            out.append(ord("a") + next(gen) % 4)
    return bytes(out[:size])


INPUTS = {
    "random-3MB": [["random", 1, 3_000_000]],
    "zeros-1.2MB": [["zeros", 0, 1_200_000]],
    "mixed": [["random", 2, 700_000], ["zeros", 0, 900_000], ["random", 3, 400_000]],
    "text-1MB": [["text", 4, 1_000_000]],
    "empty": [],
    "one-byte": [["random", 5, 1]],
    "random-100": [["random", 5, 100]],
    "random-131072": [["random", 5, 131_072]],
    "random-131073": [["random", 5, 131_073]],
    "random-600000": [["random", 5, 600_000]],
    "random-20000": [["random", 6, 20_000]],
}

CASES = [
    (name, chunker)
    for name in INPUTS
    if name != "random-20000"
    for chunker in ["rabin", "rabin-5000", "rabin-262144-524288-1048576", "buzhash"]
] + [("random-20000", "rabin-16-64-128"), ("random-20000", "rabin-min:100-avg:1000-max:3000"), ("random-20000", "rabin-48")]


def main():
    oracle = sys.argv[1]
    cases = []
    for name, chunker in CASES:
        data = b"".join(segment(*s) for s in INPUTS[name])
        out = subprocess.run([oracle, chunker], input=data, capture_output=True, check=True).stdout.decode().strip()
        lengths = [int(x) for x in out.split(",")] if out else []
        assert sum(lengths) == len(data), (name, chunker)
        cases.append({"input": name, "chunker": chunker, "lengths": lengths})
    head = {
        "what": "chunk lengths of Kubo's rabin and buzhash splitters (boxo/chunker) for reproducible inputs",
        "made_by": "Scripts/chunker-vectors/make_vectors.py with the Go oracle beside it",
        "inputs": {k: [{"kind": s[0], "seed": s[1], "size": s[2]} for s in v] for k, v in INPUTS.items()},
    }
    text = json.dumps(head, indent=1)[:-2]
    rows = ",\n".join("  " + json.dumps(c, separators=(",", ":")) for c in cases)
    print(text + ',\n "cases": [\n' + rows + "\n ]\n}")


if __name__ == "__main__":
    main()
