#pragma once
// Locks as a pass or a re-check judged them, made by hand, for the tests of what consumes
// judgements: the lock table, the monitor and the logs.

#include <agentlock/pass.hpp>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace agentlock::test {

/// A parsed lock of `pid` (and `session`) at `worker`, judged `verdict` and handled by `action`;
/// its owner alive for live and orphaned, dead otherwise, with start ticks 77.
inline LockRecord judged_record(const std::string& worker, Verdict verdict, std::int64_t pid = 100,
                                const std::string& session = "",
                                LockAction action = LockAction::kept) {
    LockRecord r;
    r.worker = worker;
    r.lock_path = worker + "/.runtime/agent.lock";
    LockInfo info;
    info.pid = pid;
    info.session_id = session;
    r.info = info;
    r.content = "{\"pid\": " + std::to_string(pid) + "}";
    r.judgement = {verdict, "because " + std::string(to_string(verdict))};
    r.action = action;
    r.process.state = (verdict == Verdict::live || verdict == Verdict::orphaned)
                          ? ProcessState::alive
                          : ProcessState::dead;
    r.process.start_ticks = 77;
    return r;
}

/// A re-check that found `rec` (under root /srv), with the tmux answer it used, if any.
inline WorkerCheck found_check(LockRecord rec, std::optional<TmuxFacts> tmux = std::nullopt) {
    WorkerCheck c;
    c.state = WorkerCheck::State::found;
    c.worker = rec.worker;
    c.lock_path = rec.lock_path;
    c.root = "/srv";
    c.record = std::move(rec);
    c.tmux = std::move(tmux);
    return c;
}

/// A re-check that found no lock at `worker`.
inline WorkerCheck absent_check(const std::string& worker) {
    WorkerCheck c;
    c.state = WorkerCheck::State::absent;
    c.worker = worker;
    c.lock_path = worker + "/.runtime/agent.lock";
    return c;
}

/// A full pass over the root /srv that judged `locks`, with tmux in `tmux_state`.
inline PassReport report_with(std::deque<LockRecord> locks, TmuxState tmux_state = TmuxState::ok) {
    PassReport r;
    r.roots.push_back({"/srv", true, ""});
    r.tmux.state = tmux_state;
    r.locks = std::move(locks);
    summarize_locks(r); // what LockTable::replace reads
    return r;
}

} // namespace agentlock::test
