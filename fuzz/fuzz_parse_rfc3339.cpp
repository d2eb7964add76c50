// libFuzzer target: parse_rfc3339 on arbitrary bytes. A time it accepts is formatted by
// format_rfc3339 and parsed back to the same instant; nothing may crash.

#include <agentlock/lock_file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto t = agentlock::parse_rfc3339(input);
    if (!t) {
        return 0;
    }
    const std::string formatted = agentlock::format_rfc3339(*t);
    const auto back = agentlock::parse_rfc3339(formatted);
    if (!back || *back != *t) {
        std::fprintf(stderr, "fuzz_parse_rfc3339: %.*s -> %s does not parse back to itself\n",
                     static_cast<int>(size), input.data(), formatted.c_str());
        std::abort();
    }
    // The shortest time accepted is 2006-01-02T3:04:05Z: like Go's time.Parse(RFC3339), a
    // one-digit hour is read.
    if (size < 19) {
        std::fprintf(stderr, "fuzz_parse_rfc3339: accepted %zu bytes: %.*s\n", size,
                     static_cast<int>(size), input.data());
        std::abort();
    }
    return 0;
}
