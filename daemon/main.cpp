// agentlockd: removes stale agent locks under worker roots; see --help.

#include "app.hpp"

#include <malloc.h>

#include <string>
#include <vector>

int main(int argc, char** argv) {
    // One malloc arena for every thread: the walk threads and the worker allocate what the loop
    // thread frees, and with an arena each, freed memory stays spread over several heaps (about
    // 7% more resident memory at 100,000 locks; bench/RESULTS.md).
    ::mallopt(M_ARENA_MAX, 1);
    // A fixed threshold (glibc raises it as big blocks are freed): the tables' big arrays stay
    // in their own mappings and go back to the system when freed, instead of fragmenting the
    // heap between passes (70 instead of 74 MiB peak at 100,000 locks).
    ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    std::vector<std::string> args(argv + 1, argv + argc);
    return agentlock::daemon::agentlockd_main(args);
}
