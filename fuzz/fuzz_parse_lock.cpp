// libFuzzer target: parse_lock on arbitrary bytes. Every input is classified: either a LockInfo
// (which then survives serialize_lock and parse_lock unchanged) or an invalid_lock error with a
// message. Anything else, a crash or a sanitizer report, is a finding.

#include <agentlock/lock_file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what, std::string_view input, const std::string& detail) {
    std::fprintf(stderr, "fuzz_parse_lock: %s\ninput (%zu bytes): %.*s\n%s\n", what, input.size(),
                 static_cast<int>(input.size() > 2000 ? 2000 : input.size()), input.data(),
                 detail.c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto parsed = agentlock::parse_lock(input);
    if (!parsed) {
        const agentlock::Error& e = parsed.error();
        if (e.kind != agentlock::ErrorKind::invalid_lock) {
            fail("an error that is not invalid_lock", input, e.message);
        }
        if (e.message.empty()) {
            fail("an invalid_lock error without a message", input, "");
        }
        return 0;
    }
    // What we read, we can write, and read back the same.
    const std::string written = agentlock::serialize_lock(*parsed);
    const auto again = agentlock::parse_lock(written);
    if (!again) {
        fail("serialize_lock wrote what parse_lock rejects", input,
             written + "\n" + again.error().message);
    }
    if (!(*again == *parsed)) {
        fail("parse(serialize(parse(x))) differs from parse(x)", input, written);
    }
    if (agentlock::serialize_lock(*again) != written) {
        fail("serialize_lock is not stable", input, written);
    }
    return 0;
}
