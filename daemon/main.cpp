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
    std::vector<std::string> args(argv + 1, argv + argc);
    return agentlock::daemon::agentlockd_main(args);
}
