"""Counts ticks in the cursor and reports one item per tick. Behaviour switches in the job's
config are there for pollerd's tests: mode = ok | transient | permanent | config | crash | junk."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "sdk", "python"))
import pollerd_plugin as pp  # noqa: E402

plugin = pp.Plugin("nexo-plugin.toml")


@plugin.poller("py_counter")
def tick(req: pp.TickRequest) -> pp.TickReply:
    mode = (req.config or {}).get("mode", "ok")
    if mode == "transient":
        raise pp.Transient("upstream returned 503")
    if mode == "permanent":
        raise pp.Permanent("credentials revoked")
    if mode == "config":
        raise pp.Config("feed_url is missing")
    if mode == "crash":
        os._exit(3)
    if mode == "junk":
        sys.__stdout__.write("this is not JSON\n")
        sys.__stdout__.flush()
    n = int(req.cursor or b"0") + 1
    print(f"tick {n} for {req.job_id}")  # goes to stderr
    return pp.TickReply(next_cursor=str(n).encode(), items=[{"id": f"{req.job_id}-{n}", "n": n}])


if __name__ == "__main__":
    plugin.run()
