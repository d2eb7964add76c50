#pragma once
// Fake probes for unit tests of the rule itself, and fake clock and watches for the monitor's.

#include <agentlock/monitor.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

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

/// When tmux_ok's server started and its sessions were created: long before any test's lock.
inline const Timestamp k_tmux_long_ago{std::chrono::seconds(1'000'000'000)};

/// A server started long ago listing sessions by `names` and by `ids` and panes `panes`, every
/// session created long ago, every pane alive. A name and an id are separate sessions.
inline TmuxFacts tmux_ok(std::set<std::string> names, std::set<std::string> ids = {},
                         std::set<std::string> panes = {}) {
    TmuxFacts f;
    f.state = TmuxState::ok;
    f.server_started = k_tmux_long_ago;
    int next_id = 9000;
    const auto add_session = [&f](std::string id, std::string name) {
        TmuxSession s;
        s.id = id;
        s.name = std::move(name);
        s.created = k_tmux_long_ago;
        s.panes = 1;
        f.session_ids.insert(id);
        f.session_names.insert(s.name);
        f.sessions.emplace(std::move(id), std::move(s));
    };
    for (const auto& name : names) {
        add_session("$" + std::to_string(next_id++), name);
    }
    for (const auto& id : ids) {
        add_session(id, "session" + id);
    }
    for (const auto& id : panes) {
        TmuxPane p;
        p.id = id;
        p.session_id = "$8999";
        p.dead = false;
        f.pane_ids.insert(id);
        f.panes.emplace(id, std::move(p));
    }
    return f;
}

inline TmuxFacts tmux_state(TmuxState state, std::string detail = "") {
    TmuxFacts f;
    f.state = state;
    f.detail = std::move(detail);
    return f;
}

/// A steady clock that moves only when told.
class FakeClock final : public MonitorClock {
public:
    MonoTime now() const override { return m_now; }
    void advance(std::chrono::milliseconds by) { m_now += by; }
    void set(MonoTime at) { m_now = at; }

private:
    MonoTime m_now{std::chrono::hours(1000)};
};

/// Records the processes the monitor asks to watch for tmux; PIDs in `unwatchable` cannot be.
class FakeTmuxWatch final : public TmuxWatch {
public:
    void watch(const std::set<std::int64_t>& pids) override {
        watched = pids;
        ++calls;
    }
    bool all_watched() const override {
        return std::none_of(watched.begin(), watched.end(),
                            [this](std::int64_t pid) { return unwatchable.count(pid) != 0; });
    }

    std::set<std::int64_t> watched;
    std::set<std::int64_t> unwatchable;
    int calls = 0;
};

/// Records the owners the monitor asks to watch. PIDs in `dead` are reported as exited as soon
/// as they are set, the way the pidfd watcher reports an owner that died before its pidfd was
/// opened; PIDs in `unwatchable` are left to polling, as beyond the pidfd budget.
class FakeOwnerWatch final : public OwnerWatch {
public:
    void set_owner(const std::string& worker, const std::optional<Owner>& owner) override {
        m_unwatched.erase(worker);
        if (!owner) {
            owners.erase(worker);
            return;
        }
        owners[worker] = *owner;
        if (unwatchable.count(owner->pid) != 0) {
            m_unwatched.insert(worker);
        } else if (dead.count(owner->pid) != 0 && on_exit) {
            on_exit({worker});
        }
    }
    void forget_if(const std::function<bool(const std::string&)>& gone) override {
        std::erase_if(owners, [&gone](const auto& entry) { return gone(entry.first); });
        std::erase_if(m_unwatched, gone);
    }
    const std::set<std::string>& unwatched() const override { return m_unwatched; }

    std::map<std::string, Owner> owners;
    std::set<std::int64_t> dead;
    std::set<std::int64_t> unwatchable;
    std::function<void(const std::set<std::string>&)> on_exit;

private:
    std::set<std::string> m_unwatched;
};

/// Directory watches as a set of paths with their kinds.
class FakeDirWatchSet final : public DirWatchSet {
public:
    std::optional<WatchKind> kind_of(const std::string& path) const override {
        auto it = kinds.find(path);
        return it == kinds.end() ? std::nullopt : std::optional<WatchKind>(it->second);
    }
    void remove_under(const std::string& path) override {
        removed.push_back(path);
        std::erase_if(kinds, [&path](const auto& entry) {
            return entry.first == path || entry.first.rfind(path + "/", 0) == 0;
        });
    }
    std::map<std::string, WatchKind> kinds;
    std::vector<std::string> removed;
};

} // namespace agentlock::test
