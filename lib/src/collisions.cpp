#include <agentlock/collisions.hpp>

#include <algorithm>
#include <map>
#include <string>

namespace agentlock {

std::string_view to_string(CollisionKind kind) {
    switch (kind) {
    case CollisionKind::stale:
        return "stale";
    case CollisionKind::orphaned:
        return "orphaned";
    case CollisionKind::duplicate_session:
        return "duplicate-session";
    case CollisionKind::duplicate_pid:
        return "duplicate-pid";
    }
    return "stale";
}

bool claims_identity(Verdict v) {
    return v == Verdict::live || v == Verdict::orphaned || v == Verdict::held_by_session ||
           v == Verdict::unknown;
}

std::vector<std::string> worker_names(const std::vector<PathRef>& workers) {
    std::vector<std::string> out;
    out.reserve(workers.size());
    for (const auto& w : workers) {
        out.push_back(w.str());
    }
    return out;
}

std::string list_workers(const std::vector<PathRef>& workers, std::string_view sep) {
    std::string out;
    const std::size_t shown = std::min(workers.size(), k_collision_message_workers);
    for (std::size_t i = 0; i < shown; ++i) {
        if (i > 0) {
            out += sep;
        }
        out += workers[i].view();
    }
    if (shown < workers.size()) {
        out += sep;
        out += "... and " + std::to_string(workers.size() - shown) + " more";
    }
    return out;
}

std::vector<Collision> detect_collisions(const std::vector<JudgedLock>& locks,
                                         bool per_lock_kinds) {
    std::vector<Collision> out;
    std::map<std::string_view, std::vector<const JudgedLock*>> by_session;
    std::map<std::int64_t, std::vector<const JudgedLock*>> by_pid;

    for (const auto& lock : locks) {
        const Verdict v = lock.verdict;
        if (per_lock_kinds && (v == Verdict::stale || v == Verdict::orphaned)) {
            const PathRef worker(lock.worker);
            const std::string session(lock.session_id.empty() ? "-" : lock.session_id);
            const std::string pid = std::to_string(lock.pid);
            out.push_back({v == Verdict::stale ? CollisionKind::stale : CollisionKind::orphaned,
                           {worker},
                           lock.pid,
                           std::string(lock.session_id),
                           v == Verdict::stale
                               ? "stale lock in " + worker.str() + " (dead PID " + pid +
                                     ", session: " + session + ")"
                               : "orphaned lock in " + worker.str() + " (session " + session +
                                     " not found, PID " + pid + " still alive)"});
        }
        if (!claims_identity(v)) {
            continue;
        }
        if (!lock.session_id.empty()) {
            by_session[lock.session_id].push_back(&lock);
        }
        // Only a PID known to be alive can hold two workers at once.
        if (v == Verdict::live || v == Verdict::orphaned) {
            by_pid[lock.pid].push_back(&lock);
        }
    }

    auto workers_of = [](const std::vector<const JudgedLock*>& group) {
        std::vector<PathRef> workers;
        workers.reserve(group.size());
        for (const auto* l : group) {
            workers.emplace_back(l->worker);
        }
        std::sort(workers.begin(), workers.end());
        workers.erase(std::unique(workers.begin(), workers.end()), workers.end());
        return workers;
    };

    for (const auto& [session, group] : by_session) {
        auto workers = workers_of(group);
        if (workers.size() < 2) {
            continue;
        }
        std::string message = "session " + std::string(session) + " is claimed by " +
                              std::to_string(workers.size()) +
                              " workers: " + list_workers(workers, ", ");
        out.push_back({CollisionKind::duplicate_session, std::move(workers), 0,
                       std::string(session), std::move(message)});
    }
    for (const auto& [pid, group] : by_pid) {
        auto workers = workers_of(group);
        if (workers.size() < 2) {
            continue;
        }
        std::string message = "live PID " + std::to_string(pid) + " holds " +
                              std::to_string(workers.size()) +
                              " workers: " + list_workers(workers, ", ");
        out.push_back(
            {CollisionKind::duplicate_pid, std::move(workers), pid, "", std::move(message)});
    }
    std::stable_sort(out.begin(), out.end(), [](const Collision& a, const Collision& b) {
        if (a.kind != b.kind) {
            return a.kind < b.kind;
        }
        return a.workers < b.workers;
    });
    return out;
}

} // namespace agentlock
