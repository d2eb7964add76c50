// libFuzzer target: parse_proc_stat on arbitrary bytes (a /proc/<pid>/stat whose command name
// may hold spaces, parentheses and newlines). Nothing may crash; an accepted text has a ')'.

#include <agentlock/process_probe.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto fields = agentlock::parse_proc_stat(input);
    if (fields && input.find(')') == std::string_view::npos) {
        std::fprintf(stderr, "fuzz_parse_proc_stat: accepted a stat line without ')'\n");
        std::abort();
    }
    return 0;
}
