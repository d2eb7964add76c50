#include "lock_table.hpp"

#include "watch_plan.hpp"

#include <agentlock/findings.hpp>

#include <algorithm>
#include <set>

namespace agentlock::daemon {

namespace {

KnownLock known(const LockSummary& s, TmuxState tmux_state) {
    KnownLock k;
    k.verdict = s.verdict;
    k.parsed = s.parsed;
    k.pid = s.pid;
    k.session_id = s.session_id;
    k.owner_alive = s.owner == ProcessState::alive;
    k.start_ticks = s.start_ticks;
    k.tmux_state = tmux_state;
    return k;
}

} // namespace

void LockTable::store(const LockRecord& record, TmuxState tmux_state) {
    m_locks.insert_or_assign(PathRef(record.worker), known(summarize(record), tmux_state));
}

void LockTable::replace(PassReport& report) {
    m_locks.clear();
    for (auto& s : report.summaries) {
        if (s.action != LockAction::removed) {
            KnownLock k = known(s, report.tmux.state);
            // Sorted by worker: each goes at the end.
            m_locks.emplace_hint(m_locks.end(), std::move(s.worker), std::move(k));
        }
    }
    report.summaries.clear(); // their workers are ours now
    m_tmux = report.tmux;
    m_frozen_roots = unavailable_roots(report);
}

void LockTable::apply(const WorkerCheck& check) {
    switch (check.state) {
    case WorkerCheck::State::unreachable:
        return; // we do not know more than before
    case WorkerCheck::State::absent:
    case WorkerCheck::State::outside:
        forget(check.worker);
        return;
    case WorkerCheck::State::found:
        break;
    }
    if (check.record.action == LockAction::removed) {
        forget(check.worker);
        return;
    }
    store(check.record, check.tmux ? check.tmux->state : m_tmux.state);
}

void LockTable::forget(const std::string& worker) {
    auto it = m_locks.find(worker);
    if (it != m_locks.end()) {
        m_locks.erase(it);
    }
}

const KnownLock* LockTable::find(const std::string& worker) const {
    auto it = m_locks.find(worker);
    return it == m_locks.end() ? nullptr : &it->second;
}

std::optional<Owner> LockTable::owner_of(const std::string& worker) const {
    const KnownLock* k = find(worker);
    if (k == nullptr || !k->parsed || !k->owner_alive) {
        return std::nullopt;
    }
    if (k->verdict != Verdict::live && k->verdict != Verdict::orphaned) {
        return std::nullopt;
    }
    return Owner{k->pid, k->start_ticks};
}

std::vector<SessionWait> LockTable::session_waits() const {
    std::vector<SessionWait> out;
    for (const auto& [worker, k] : m_locks) {
        if (!k.parsed || k.session_id.empty()) {
            continue;
        }
        if (k.verdict == Verdict::held_by_session) {
            out.push_back({worker.str(), k.session_id, false});
        } else if (k.verdict == Verdict::unknown && k.tmux_state == TmuxState::unknown) {
            out.push_back({worker.str(), k.session_id, true});
        }
    }
    return out;
}

std::vector<std::string> LockTable::workers_under(const std::string& path) const {
    std::vector<std::string> out;
    for (auto it = m_locks.lower_bound(path); it != m_locks.end(); ++it) {
        const std::string_view worker = it->first.view();
        if (worker.compare(0, path.size(), path) != 0) {
            break; // past every worker whose path starts with `path`
        }
        if (path_is_under(worker, path)) {
            out.emplace_back(worker);
        }
    }
    return out;
}

std::vector<std::string> LockTable::workers() const {
    std::vector<std::string> out;
    out.reserve(m_locks.size());
    for (const auto& [worker, k] : m_locks) {
        out.push_back(worker.str());
    }
    return out;
}

void LockTable::for_each_worker(const std::function<void(const std::string&)>& f) const {
    for (const auto& [worker, k] : m_locks) {
        f(worker.str());
    }
}

std::vector<Collision> LockTable::collisions() const {
    std::vector<JudgedLock> judged;
    judged.reserve(m_locks.size());
    for (const auto& [worker, k] : m_locks) {
        if (k.parsed) {
            judged.push_back({worker.view(), k.pid, k.session_id, k.verdict});
        }
    }
    return detect_collisions(judged, false); // duplicate claims: the rest are lock findings
}

unsigned LockTable::deepest_worker(const std::vector<std::string>& roots) const {
    unsigned deepest = 0;
    for (const auto& [worker, k] : m_locks) {
        const std::string path = worker.str();
        if (auto root = root_containing(roots, path)) {
            deepest = std::max(deepest, depth_below(*root, path).value_or(0));
        }
    }
    return deepest;
}

} // namespace agentlock::daemon
