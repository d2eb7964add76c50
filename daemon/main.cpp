// agentlockd: removes stale agent locks under worker roots; see --help.

#include "app.hpp"

#include <string>
#include <vector>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    return agentlock::daemon::agentlockd_main(args);
}
