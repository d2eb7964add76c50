#include "lock_table.hpp"

#include "watch_plan.hpp"

#include <agentlock/findings.hpp>

#include <algorithm>
#include <set>

namespace agentlock::daemon {

void LockTable::store(const LockRecord& record, TmuxState tmux_state) {
    KnownLock k;
    k.verdict = record.judgement.verdict;
    k.parsed = record.info.has_value();
    if (record.info) {
        k.pid = record.info->pid;
        k.session_id = record.info->session_id;
    }
    k.owner_alive = record.process.state == ProcessState::alive;
    k.start_ticks = record.process.start_ticks;
    k.tmux_state = tmux_state;
    m_locks[record.worker] = std::move(k);
}

std::vector<std::string> LockTable::replace(const PassReport& report) {
    std::set<std::string> touched;
    for (const auto& [worker, k] : m_locks) {
        touched.insert(worker);
    }
    m_locks.clear();
    for (const auto& rec : report.locks) {
        touched.insert(rec.worker);
        if (rec.action != LockAction::removed) {
            store(rec, report.tmux.state);
        }
    }
    m_tmux = report.tmux;
    m_frozen_roots = unavailable_roots(report);
    return {touched.begin(), touched.end()};
}

void LockTable::apply(const WorkerCheck& check) {
    switch (check.state) {
    case WorkerCheck::State::unreachable:
        return; // we do not know more than before
    case WorkerCheck::State::absent:
    case WorkerCheck::State::outside:
        m_locks.erase(check.worker);
        return;
    case WorkerCheck::State::found:
        break;
    }
    if (check.record.action == LockAction::removed) {
        m_locks.erase(check.worker);
        return;
    }
    store(check.record, check.tmux ? check.tmux->state : m_tmux.state);
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
            out.push_back({worker, k.session_id, false});
        } else if (k.verdict == Verdict::unknown && k.tmux_state == TmuxState::unknown) {
            out.push_back({worker, k.session_id, true});
        }
    }
    return out;
}

std::vector<std::string> LockTable::workers_under(const std::string& path) const {
    std::vector<std::string> out;
    for (auto it = m_locks.lower_bound(path); it != m_locks.end(); ++it) {
        if (it->first.compare(0, path.size(), path) != 0) {
            break; // past every worker whose path starts with `path`
        }
        if (path_is_under(it->first, path)) {
            out.push_back(it->first);
        }
    }
    return out;
}

std::vector<std::string> LockTable::workers() const {
    std::vector<std::string> out;
    out.reserve(m_locks.size());
    for (const auto& [worker, k] : m_locks) {
        out.push_back(worker);
    }
    return out;
}

std::vector<Collision> LockTable::collisions() const {
    std::vector<JudgedLock> judged;
    judged.reserve(m_locks.size());
    for (const auto& [worker, k] : m_locks) {
        if (k.parsed) {
            judged.push_back({worker, k.pid, k.session_id, k.verdict});
        }
    }
    return detect_collisions(judged);
}

unsigned LockTable::deepest_worker(const std::vector<std::string>& roots) const {
    unsigned deepest = 0;
    for (const auto& [worker, k] : m_locks) {
        if (auto root = root_containing(roots, worker)) {
            deepest = std::max(deepest, depth_below(*root, worker).value_or(0));
        }
    }
    return deepest;
}

} // namespace agentlock::daemon
