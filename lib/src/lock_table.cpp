#include <agentlock/findings.hpp>
#include <agentlock/lock_table.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <set>

namespace agentlock {

namespace {

// A hold judged while its server could not be asked keeps the processes its server's last
// answer named: their exit is still what may end it. A server closing its panes answers
// "server exited unexpectedly" to a query that comes in meanwhile; without this, that answer
// would stop the watch on the server itself, and its exit, the moment every lock it held is
// free, would go unseen until the next slow poll. Watching a process only ever prompts a query.
// A hold is kept for a lock held by its session (its server answered) or judged unknown because
// its server could not be asked: the verdict says which.
void keep_known_pids(TmuxHold& fresh, Verdict verdict, const TmuxHold* before) {
    if (verdict == Verdict::unknown && fresh.pids.empty() && before != nullptr &&
        before->server == fresh.server) {
        fresh.pids = before->pids;
    }
}

} // namespace

LockTable::Entries::iterator LockTable::slot(std::string_view worker) {
    return std::lower_bound(
        m_locks.begin(), m_locks.end(), worker,
        [](const Entry& e, std::string_view w) { return e.lock.worker.view() < w; });
}

LockTable::Entries::const_iterator LockTable::slot(std::string_view worker) const {
    return std::lower_bound(
        m_locks.begin(), m_locks.end(), worker,
        [](const Entry& e, std::string_view w) { return e.lock.worker.view() < w; });
}

void LockTable::store(const LockRecord& record, TmuxState tmux_state) {
    LockSummary k = summarize(record, tmux_state);
    auto it = slot(record.worker);
    if (it != m_locks.end() && it->lock.worker == std::string_view(record.worker)) {
        if (it->gone) {
            it->gone = false;
            --m_gone;
        }
        k.worker = it->lock.worker; // the pooled copy already shared with the watchers
        it->lock = std::move(k);
        return;
    }
    m_locks.insert(it, Entry{std::move(k), false});
}

void LockTable::replace(PassReport& report) {
    m_locks.clear();
    m_gone = 0;
    const auto kept =
        std::count_if(report.summaries.begin(), report.summaries.end(),
                      [](const LockSummary& s) { return s.action != LockAction::removed; });
    m_locks.shrink_to_fit();
    m_locks.reserve(static_cast<std::size_t>(kept));
    for (auto& s : report.summaries) {
        if (s.action != LockAction::removed) {
            m_locks.push_back({std::move(s), false}); // already sorted
        }
    }
    report.summaries.clear(); // their workers are ours now
    for (auto& [worker, hold] : report.holds) {
        if (const LockSummary* lock = find(worker)) {
            keep_known_pids(hold, lock->verdict, hold_of(worker));
        }
    }
    m_holds = std::move(report.holds);
    report.holds.clear();
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
    if (check.record.hold) {
        TmuxHold hold = *check.record.hold;
        keep_known_pids(hold, check.record.judgement.verdict, hold_of(check.worker));
        m_holds.insert_or_assign(check.worker, std::move(hold));
    } else if (auto it = m_holds.find(check.worker); it != m_holds.end()) {
        m_holds.erase(it);
    }
}

void LockTable::forget(std::string_view worker) {
    if (auto held = m_holds.find(worker); held != m_holds.end()) {
        m_holds.erase(held);
    }
    auto it = slot(worker);
    if (it == m_locks.end() || it->lock.worker != worker || it->gone) {
        return;
    }
    it->gone = true;
    PathRef pooled = std::move(it->lock.worker);
    it->lock = LockSummary{};
    it->lock.worker = std::move(pooled);
    ++m_gone;
    if (m_gone > 64 && m_gone * 4 > m_locks.size()) {
        std::erase_if(m_locks, [](const Entry& e) { return e.gone; });
        m_gone = 0;
    }
}

const LockSummary* LockTable::find(std::string_view worker) const {
    auto it = slot(worker);
    if (it == m_locks.end() || it->lock.worker != worker || it->gone) {
        return nullptr;
    }
    return &it->lock;
}

std::optional<Owner> LockTable::owner_of(std::string_view worker) const {
    const LockSummary* k = find(worker);
    if (k == nullptr || !k->parsed || k->owner != ProcessState::alive) {
        return std::nullopt;
    }
    if (k->verdict != Verdict::live && k->verdict != Verdict::orphaned) {
        return std::nullopt;
    }
    return Owner{k->pid, k->start_ticks};
}

namespace {

// Whether `k` waits on its tmux session: held by it (removable once it is gone), or unknown for
// want of tmux.
bool waits_on_session(const LockSummary& k) {
    if (!k.parsed || k.session_id.empty()) {
        return false;
    }
    return k.verdict == Verdict::held_by_session ||
           (k.verdict == Verdict::unknown && k.tmux_state == TmuxState::unknown);
}

} // namespace

std::vector<SessionWait> LockTable::session_waits() const {
    std::vector<SessionWait> out;
    for (const auto& [k, gone] : m_locks) {
        const TmuxHold* hold = gone ? nullptr : hold_of(k.worker.view());
        if (!gone && (hold != nullptr || waits_on_session(k))) {
            SessionWait wait{k.worker.str(), k.session_id.str(), k.verdict == Verdict::unknown, {}};
            if (hold != nullptr) {
                wait.server = hold->server;
            }
            out.push_back(std::move(wait));
        }
    }
    return out;
}

bool LockTable::has_session_waits() const {
    return !m_holds.empty() || std::any_of(m_locks.begin(), m_locks.end(), [](const Entry& e) {
        return !e.gone && waits_on_session(e.lock);
    });
}

bool LockTable::has_unwatched_waits() const {
    return std::any_of(m_holds.begin(), m_holds.end(),
                       [](const auto& h) { return h.second.pids.empty(); }) ||
           std::any_of(m_locks.begin(), m_locks.end(), [this](const Entry& e) {
               return !e.gone && waits_on_session(e.lock) &&
                      !m_holds.contains(e.lock.worker.view());
           });
}

std::set<std::int64_t> LockTable::tmux_pids() const {
    std::set<std::int64_t> pids;
    for (const auto& [worker, hold] : m_holds) {
        pids.insert(hold.pids.begin(), hold.pids.end());
    }
    return pids;
}

const TmuxHold* LockTable::hold_of(std::string_view worker) const {
    auto it = m_holds.find(worker);
    return it != m_holds.end() ? &it->second : nullptr;
}

void LockTable::refresh_holds(const ServerRef& server, const TmuxFacts& fresh) {
    if (fresh.state == TmuxState::unknown) {
        return; // see keep_known_pids
    }
    for (auto& [worker, hold] : m_holds) {
        if (hold.server == server) {
            const LockSummary* lock = find(worker);
            hold.pids = lock != nullptr ? tmux_hold_pids(fresh, lock->session_id.view())
                                        : std::vector<std::int64_t>{};
        }
    }
}

std::vector<std::string> LockTable::workers_under(const std::string& path) const {
    std::vector<std::string> out;
    for (auto it = slot(path); it != m_locks.end(); ++it) {
        const std::string_view worker = it->lock.worker.view();
        if (worker.compare(0, path.size(), path) != 0) {
            break; // past every worker whose path starts with `path`
        }
        if (!it->gone && path_is_under(worker, path)) {
            out.emplace_back(worker);
        }
    }
    return out;
}

std::vector<std::string> LockTable::workers() const {
    std::vector<std::string> out;
    out.reserve(size());
    for (const auto& [k, gone] : m_locks) {
        if (!gone) {
            out.push_back(k.worker.str());
        }
    }
    return out;
}

void LockTable::for_each_worker(const std::function<void(const std::string&)>& f) const {
    for (const auto& [k, gone] : m_locks) {
        if (!gone) {
            f(k.worker.str());
        }
    }
}

std::vector<Collision> LockTable::collisions() const {
    std::vector<JudgedLock> judged;
    for (const auto& [k, gone] : m_locks) {
        if (!gone && k.parsed && claims_identity(k.verdict)) {
            judged.push_back({k.worker.view(), k.pid, k.session_id.view(), k.verdict});
        }
    }
    return detect_collisions(judged, false); // duplicate claims: the rest are lock findings
}

unsigned LockTable::deepest_worker(const std::vector<std::string>& roots) const {
    unsigned deepest = 0;
    for (const auto& [k, gone] : m_locks) {
        if (gone) {
            continue;
        }
        if (const std::string* root = root_containing(roots, k.worker.view())) {
            deepest = std::max(deepest, depth_below(*root, k.worker.view()).value_or(0));
        }
    }
    return deepest;
}

} // namespace agentlock
