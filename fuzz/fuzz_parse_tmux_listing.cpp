// libFuzzer target: parse_tmux_listing on arbitrary bytes. Every listing is classified: ok with
// well-formed ids ("$N" sessions, "%N" panes, non-empty names), or unknown with a reason and no
// sessions at all (a listing it cannot read completely must not pass for a complete one).

#include <agentlock/tmux_probe.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

bool well_formed(const std::string& id, char sigil) {
    if (id.size() < 2 || id[0] != sigil) {
        return false;
    }
    for (std::size_t i = 1; i < id.size(); ++i) {
        if (id[i] < '0' || id[i] > '9') {
            return false;
        }
    }
    return true;
}

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_parse_tmux_listing: %s\n", what);
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const agentlock::TmuxFacts facts = agentlock::parse_tmux_listing(input);
    switch (facts.state) {
    case agentlock::TmuxState::ok:
        for (const auto& s : facts.session_ids) {
            if (!well_formed(s, '$')) {
                fail("a session id that is not $N");
            }
        }
        for (const auto& p : facts.pane_ids) {
            if (!well_formed(p, '%')) {
                fail("a pane id that is not %N");
            }
        }
        for (const auto& n : facts.session_names) {
            if (n.empty()) {
                fail("an empty session name");
            }
        }
        break;
    case agentlock::TmuxState::unknown:
        if (facts.detail.empty()) {
            fail("unknown without a reason");
        }
        if (!facts.session_ids.empty() || !facts.pane_ids.empty() || !facts.session_names.empty()) {
            fail("unknown, yet with sessions");
        }
        break;
    case agentlock::TmuxState::no_server:
        fail("a listing cannot mean no server");
    }
    return 0;
}
