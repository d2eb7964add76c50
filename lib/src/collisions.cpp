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

namespace {

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += ", ";
        }
        out += item;
    }
    return out;
}

// A lock that some agent on this host may still be using: it can collide with another.
bool claims_identity(Verdict v) {
    return v == Verdict::live || v == Verdict::orphaned || v == Verdict::held_by_session ||
           v == Verdict::unknown;
}

} // namespace

std::vector<Collision> detect_collisions(const std::vector<JudgedLock>& locks) {
    std::vector<Collision> out;
    std::map<std::string, std::vector<const JudgedLock*>> by_session;
    std::map<std::int64_t, std::vector<const JudgedLock*>> by_pid;

    for (const auto& lock : locks) {
        const Verdict v = lock.verdict;
        const std::string session = lock.session_id.empty() ? "-" : lock.session_id;
        if (v == Verdict::stale) {
            out.push_back({CollisionKind::stale,
                           {lock.worker},
                           lock.pid,
                           lock.session_id,
                           "stale lock in " + lock.worker + " (dead PID " +
                               std::to_string(lock.pid) + ", session: " + session + ")"});
        } else if (v == Verdict::orphaned) {
            out.push_back({CollisionKind::orphaned,
                           {lock.worker},
                           lock.pid,
                           lock.session_id,
                           "orphaned lock in " + lock.worker + " (session " + session +
                               " not found, PID " + std::to_string(lock.pid) + " still alive)"});
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
        std::vector<std::string> workers;
        workers.reserve(group.size());
        for (const auto* l : group) {
            workers.push_back(l->worker);
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
        out.push_back({CollisionKind::duplicate_session, workers, 0, session,
                       "session " + session + " is claimed by " + std::to_string(workers.size()) +
                           " workers: " + join(workers)});
    }
    for (const auto& [pid, group] : by_pid) {
        auto workers = workers_of(group);
        if (workers.size() < 2) {
            continue;
        }
        out.push_back({CollisionKind::duplicate_pid, workers, pid, "",
                       "live PID " + std::to_string(pid) + " holds " +
                           std::to_string(workers.size()) + " workers: " + join(workers)});
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
