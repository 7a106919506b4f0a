"""svcdns that cannot start says why and exits: a listen address it cannot
bind (held by another socket) is one error line and a non-zero exit, promptly,
with nothing left running (the signal handlers set up before the listeners must
not keep the loop alive)."""

import socket
import subprocess
import time

import svcdns_testlib as t


def main(tally):
    port = t.free_port()
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no SO_REUSEPORT
    holder.bind(("127.0.0.1", port))
    d = t.copy_fixture("cluster")
    try:
        t0 = time.monotonic()
        p = subprocess.run([t.BIN, "--manifests", d, "--listen", "127.0.0.1:%d" % port,
                            "--upstream", "none"], capture_output=True, text=True, timeout=60)
        dt = time.monotonic() - t0
        errors = [ln for ln in p.stderr.splitlines() if "[error]" in ln]
        tally.check(p.returncode not in (0, None) and dt < 30,
                    "a listen address that cannot be bound ends svcdns with a non-zero status",
                    "status %s after %.1f s" % (p.returncode, dt))
        tally.check(len(errors) == 1 and "127.0.0.1:%d" % port in errors[0],
                    "one error line names the address", p.stderr[-800:])
        tally.check("AddressSanitizer" not in p.stderr and "Assertion" not in p.stderr,
                    "and it exits cleanly", p.stderr[-800:])
    finally:
        holder.close()


if __name__ == "__main__":
    t.main_guard(t.Tally("startup"), main)
