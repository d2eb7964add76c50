#pragma once
// Fake probes for unit tests of the rule itself.

#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>

#include <map>

namespace agentlock::test {

/// Answers from a table; PIDs not in it are dead.
class FakeProcessProbe final : public ProcessProbe {
public:
    ProcessFacts probe(std::int64_t pid) override {
        ++calls;
        auto it = facts.find(pid);
        if (it == facts.end()) {
            ProcessFacts dead;
            dead.state = ProcessState::dead;
            return dead;
        }
        return it->second;
    }
    PidTableFacts pid_table() override {
        ++table_reads;
        return table;
    }
    std::map<std::int64_t, ProcessFacts> facts;
    PidTableFacts table; ///< unset by default: "a PID may have been reused"
    int calls = 0;
    int table_reads = 0;
};

/// Returns `facts` on every query and counts the queries.
class FakeTmuxProbe final : public TmuxProbe {
public:
    TmuxFacts query() override {
        ++calls;
        return facts;
    }
    TmuxFacts facts;
    int calls = 0;
};

inline TmuxFacts tmux_ok(std::set<std::string> names, std::set<std::string> ids = {},
                         std::set<std::string> panes = {}) {
    TmuxFacts f;
    f.state = TmuxState::ok;
    f.session_names = std::move(names);
    f.session_ids = std::move(ids);
    f.pane_ids = std::move(panes);
    return f;
}

inline TmuxFacts tmux_state(TmuxState state, std::string detail = "") {
    TmuxFacts f;
    f.state = state;
    f.detail = std::move(detail);
    return f;
}

} // namespace agentlock::test
