"""Drives a running qstore daemon with aioipfs, a third-party Kubo RPC client from PyPI.

Environment: QSTORE_API_PORT, QSTORE_API_TOKEN, QSTORE_PEER_ID, QSTORE_WORKDIR.
Exits non-zero (with the failing assertion) when the daemon does not behave as Kubo.
"""
import asyncio
import json
import os
import sys

import aioipfs


async def main() -> None:
    port = int(os.environ["QSTORE_API_PORT"])
    work = os.environ["QSTORE_WORKDIR"]
    # aioipfs sends its `auth` on most calls but not on block/put; a session-wide
    # Authorization header covers every call, as a reverse proxy's client would.
    token = os.environ["QSTORE_API_TOKEN"]
    make_session = aioipfs.AsyncIPFS.get_session

    def get_session(self, *args, **kwargs):
        session = make_session(self, *args, **kwargs)
        session._default_headers["Authorization"] = f"Bearer {token}"
        return session

    aioipfs.AsyncIPFS.get_session = get_session
    client = aioipfs.AsyncIPFS(host="127.0.0.1", port=port)
    try:
        version = await client.core.version()
        assert version["Version"], version
        ident = await client.core.id()
        assert ident["ID"] == os.environ["QSTORE_PEER_ID"], ident

        # block put / get / stat / rm
        path = os.path.join(work, "block.bin")
        payload = b"hello from aioipfs\n" * 100
        with open(path, "wb") as f:
            f.write(payload)
        put = await client.block.put(path, cid_codec="raw")
        assert "Key" in put, put
        cid = put["Key"]
        assert cid.startswith("bafkrei"), put
        assert put["Size"] == len(payload), put
        assert await client.block.get(cid) == payload
        stat = await client.block.stat(cid)
        assert stat["Size"] == len(payload) and stat["Key"] == cid, stat

        # dag put / get, through a link
        leaf_path = os.path.join(work, "leaf.json")
        with open(leaf_path, "w") as f:
            json.dump({"leaf": True, "n": 7}, f)
        leaf = (await client.dag.put(leaf_path))["Cid"]["/"]
        doc_path = os.path.join(work, "doc.json")
        with open(doc_path, "w") as f:
            json.dump({"name": "q-docs", "child": {"/": leaf}, "list": [1, 2, 3]}, f)
        root = (await client.dag.put(doc_path, store_codec="dag-cbor", input_codec="dag-json"))["Cid"]["/"]
        got = await client.dag.get(root)
        got = json.loads(got) if isinstance(got, (str, bytes)) else got
        assert got["name"] == "q-docs" and got["child"] == {"/": leaf}, got
        n = await client.dag.get(root + "/child/n")
        n = json.loads(n) if isinstance(n, (str, bytes)) else n
        assert n == 7, n

        # car export, then import of the same CAR
        car = await client.dag.car_export(root)
        assert isinstance(car, (bytes, bytearray)) and len(car) > 0, type(car)
        car_path = os.path.join(work, "doc.car")
        with open(car_path, "wb") as f:
            f.write(car)
        imported = await client.dag.car_import(car_path)
        assert imported["Root"]["Cid"]["/"] == root, imported

        # add (Kubo's default settings give Kubo's CID) and cat, whole and ranged
        added = await client.core.add_bytes(b"hello world\n")
        assert added["Hash"] == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", added
        big = bytes(range(256)) * 4096  # 1 MiB: four chunks under one root
        added_v1 = await client.core.add_bytes(big, cid_version=1)
        assert added_v1["Hash"].startswith("bafybei"), added_v1
        assert await client.cat(added_v1["Hash"]) == big
        assert await client.cat(added_v1["Hash"], offset=262140, length=10) == big[262140:262150]

        # a tree with a content-defined chunker, as aioipfs uploads it (aioipfs 0.7.1 drops the
        # progress option; the progress lines are tested in AddProgressRPCTests)
        tree = os.path.join(work, "tree")
        os.makedirs(os.path.join(tree, "sub"))
        payload = bytes((i * 7 + (i >> 11)) & 0xFF for i in range(700_000))
        with open(os.path.join(tree, "sub", "data.bin"), "wb") as f:
            f.write(payload)
        with open(os.path.join(tree, "note.txt"), "wb") as f:
            f.write(b"a note\n")
        events = [e async for e in client.core.add(tree, recursive=True, progress=True, cid_version=1, chunker="buzhash")]
        assert [e["Name"] for e in events] == ["tree/note.txt", "tree/sub/data.bin", "tree/sub", "tree"], events
        assert events[-1]["Name"] == "tree" and events[-1]["Hash"].startswith("bafybei"), events[-1]
        assert await client.cat(events[-1]["Hash"] + "/sub/data.bin") == payload

        # pins: the client pins block puts by default; a pinned block cannot be removed
        listed = await client.pin.ls(path=cid)
        assert listed["Keys"][cid]["Type"] == "recursive", listed
        refused = await client.block.rm(cid)
        assert refused["Error"].startswith("pinned"), refused
        listed = await client.pin.ls(pintype="recursive")
        assert root in listed["Keys"] and added["Hash"] in listed["Keys"], listed
        indirect = await client.pin.ls(path=leaf)
        assert indirect["Keys"][leaf]["Type"] in ("recursive", "indirect through " + root), indirect
        unpinned = await client.pin.rm(cid)
        assert unpinned["Pins"] == [cid], unpinned
        pinned = [p async for p in client.pin.add(cid, recursive=False)]
        assert any(cid in p.get("Pins", []) for p in pinned), pinned
        listed = await client.pin.ls(path=cid, pintype="direct")
        assert listed["Keys"][cid]["Type"] == "direct", listed
        await client.pin.rm(cid)
        gc = [k async for k in client.repo.gc()]
        assert isinstance(gc, list)

        # errors come back in Kubo's shape and are raised by the client
        removed = await client.block.rm(cid)
        assert removed["Hash"] == cid and removed["Error"] == "", removed
        try:
            await client.block.stat(cid)
        except aioipfs.APIError as e:
            assert "not found" in str(e.message or ""), e.message
        else:
            raise AssertionError("stat of a removed block succeeded")
        print("aioipfs e2e: ok")
    finally:
        await client.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print("assertion failed:", e, file=sys.stderr)
        raise
