"""``cli.organism_study.thread_output``: what one thread prints is captured, other threads print as before (the
study's jobs run in a thread beside the main thread's progress lines)."""

import io
import sys
import threading

from cli.organism_study import thread_output


def test_each_thread_captures_its_own_output_and_the_main_thread_is_untouched(capsys):
    original = sys.stdout
    buffers = [io.StringIO() for _ in range(2)]
    started, release = threading.Barrier(3), threading.Event()

    def job(i):
        with thread_output(buffers[i], io.StringIO()):
            started.wait()
            print(f"job {i}")
            release.wait()

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    started.wait()
    print("progress line")
    release.set()
    for t in threads:
        t.join()
    assert [b.getvalue() for b in buffers] == ["job 0\n", "job 1\n"]
    assert capsys.readouterr().out == "progress line\n"
    assert sys.stdout is original  # restored once the last capture ends
