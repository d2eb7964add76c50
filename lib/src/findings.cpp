#include <agentlock/findings.hpp>

#include <algorithm>

namespace agentlock {

std::string_view to_string(FindingState state) {
    switch (state) {
    case FindingState::appeared:
        return "appeared";
    case FindingState::changed:
        return "changed";
    case FindingState::resolved:
        return "resolved";
    }
    return "appeared";
}

std::string_view process_state_name(ProcessState state) {
    switch (state) {
    case ProcessState::alive:
        return "alive";
    case ProcessState::dead:
        return "dead";
    case ProcessState::zombie:
        return "zombie";
    case ProcessState::unknown:
        return "unknown";
    }
    return "unknown";
}

const std::string& FindingChange::event() const {
    if (state == FindingState::resolved && !finding.resolved_event.empty()) {
        return finding.resolved_event;
    }
    return finding.event;
}

bool path_is_under(std::string_view path, std::string_view root) {
    while (root.size() > 1 && root.back() == '/') {
        root.remove_suffix(1);
    }
    if (path.substr(0, root.size()) != root) {
        return false;
    }
    if (path.size() == root.size() || root == "/") {
        return true;
    }
    return path[root.size()] == '/';
}

std::vector<FindingChange> FindingTracker::update(std::vector<Finding> current,
                                                  const std::vector<std::string>& frozen_roots) {
    return update_some(
        std::move(current), [](const Finding&) { return true; }, frozen_roots);
}

std::vector<FindingChange>
FindingTracker::update_some(std::vector<Finding> current,
                            const std::function<bool(const Finding&)>& in_scope,
                            const std::vector<std::string>& frozen_roots) {
    auto frozen = [&frozen_roots](const Finding& f) {
        return std::any_of(f.paths.begin(), f.paths.end(), [&frozen_roots](const std::string& p) {
            return std::any_of(frozen_roots.begin(), frozen_roots.end(),
                               [&p](const std::string& root) { return path_is_under(p, root); });
        });
    };

    std::map<std::pair<std::string, std::string>, Finding> next;
    for (auto& f : current) {
        auto key = std::make_pair(f.event, f.key);
        next.emplace(std::move(key), std::move(f)); // the first of two duplicates wins
    }

    std::vector<FindingChange> changes;
    for (auto it = m_open.begin(); it != m_open.end();) {
        if (next.count(it->first) != 0 || !in_scope(it->second) || frozen(it->second)) {
            // Still there, not ours to decide, or under a root that could not be walked this
            // time (we do not know that it went away): kept as it is.
            ++it;
            continue;
        }
        changes.push_back({FindingState::resolved, std::move(it->second)});
        it = m_open.erase(it);
    }
    for (auto& [key, f] : next) {
        auto it = m_open.find(key);
        if (it == m_open.end()) {
            changes.push_back({FindingState::appeared, f});
            m_open.emplace(key, std::move(f));
        } else if (it->second.fingerprint != f.fingerprint) {
            changes.push_back({FindingState::changed, f});
            it->second = std::move(f);
        } else {
            it->second = std::move(f); // same finding; its other fields as seen now
        }
    }
    return changes;
}

namespace {

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += sep;
        }
        out += item;
    }
    return out;
}

void add_if_set(FindingFields& fields, std::string key, const std::string& value) {
    if (!value.empty()) {
        fields.emplace_back(std::move(key), value);
    }
}

// The event under which a lock record is a finding, or empty when it is not one.
std::string_view lock_event(const LockRecord& rec) {
    switch (rec.judgement.verdict) {
    case Verdict::live:
        return {};
    case Verdict::orphaned:
        return "lock.orphaned";
    case Verdict::held_by_session:
        return "lock.held_by_session";
    case Verdict::invalid:
        return "lock.invalid";
    case Verdict::foreign:
        return "lock.foreign";
    case Verdict::unknown:
        return "lock.unknown";
    case Verdict::stale:
        break;
    }
    switch (rec.action) {
    case LockAction::would_remove:
        return "lock.would_remove";
    case LockAction::kept:
        // A stale lock kept with a reaper detail means the removal failed; without one, the pass
        // did not try (it was cancelled).
        return rec.detail.empty() ? std::string_view{} : std::string_view{"lock.remove_failed"};
    case LockAction::removed:
    case LockAction::skipped_changed:
        return {};
    }
    return {};
}

std::string collision_event(CollisionKind kind) {
    return kind == CollisionKind::duplicate_session ? "collision.duplicate_session"
                                                    : "collision.duplicate_pid";
}

} // namespace

FindingFields lock_record_fields(const LockRecord& rec, const TmuxFacts& tmux, bool with_content) {
    FindingFields fields;
    fields.emplace_back("lock_path", rec.lock_path);
    fields.emplace_back("worker", rec.worker);
    fields.emplace_back("verdict", std::string(to_string(rec.judgement.verdict)));
    fields.emplace_back("reason", rec.judgement.reason);
    fields.emplace_back("action", std::string(to_string(rec.action)));
    if (rec.info) {
        fields.emplace_back("pid", std::to_string(rec.info->pid));
        fields.emplace_back("session_id", rec.info->session_id);
        fields.emplace_back("hostname", rec.info->hostname);
        fields.emplace_back("acquired_at", format_rfc3339(rec.info->acquired_at));
        // A lock judged without probing (foreign, or invalid) has no process evidence.
        if (rec.judgement.verdict != Verdict::foreign) {
            fields.emplace_back("pid_state", std::string(process_state_name(rec.process.state)));
        }
        add_if_set(fields, "pid_detail", rec.process.detail);
    }
    fields.emplace_back("tmux_state", std::string(to_string(tmux.state)));
    add_if_set(fields, "tmux_detail", tmux.detail);
    if (rec.detail != rec.judgement.reason) {
        add_if_set(fields, "detail", rec.detail); // the reaper's words, when they add something
    }
    if (with_content) {
        fields.emplace_back("content", rec.content);
    }
    return fields;
}

std::vector<std::string> unavailable_roots(const PassReport& report) {
    std::vector<std::string> out;
    for (const auto& root : report.roots) {
        if (!root.ok) {
            out.push_back(root.path);
        }
    }
    return out;
}

std::vector<Finding> findings_of(const PassReport& report) {
    std::vector<Finding> out;

    for (const auto& root : report.roots) {
        if (root.ok) {
            continue;
        }
        Finding f;
        f.event = "root.unavailable";
        f.resolved_event = "root.recovered";
        f.key = root.path;
        f.fingerprint = root.error;
        f.fields = {{"root", root.path}, {"error", root.error}};
        out.push_back(std::move(f));
    }

    if (report.tmux.state == TmuxState::unknown) {
        Finding f;
        f.event = "tmux.unreachable";
        f.resolved_event = "tmux.recovered";
        f.key = "tmux";
        f.fingerprint = report.tmux.detail;
        f.fields = {{"tmux_state", std::string(to_string(report.tmux.state))},
                    {"tmux_detail", report.tmux.detail}};
        out.push_back(std::move(f));
    }

    for (const auto& rec : report.locks) {
        const std::string_view event = lock_event(rec);
        if (event.empty()) {
            continue;
        }
        Finding f;
        f.event = std::string(event);
        f.key = rec.lock_path;
        // The content identifies the claim; an invalid lock's reason (a FIFO has no content)
        // tells its problems apart.
        f.fingerprint = rec.content;
        if (rec.judgement.verdict == Verdict::invalid) {
            f.fingerprint += '\n';
            f.fingerprint += rec.judgement.reason;
        }
        f.paths = {rec.lock_path};
        f.fields = lock_record_fields(rec, report.tmux, event == "lock.would_remove");
        out.push_back(std::move(f));
    }

    for (const auto& c : report.collisions) {
        if (c.kind != CollisionKind::duplicate_session && c.kind != CollisionKind::duplicate_pid) {
            continue;
        }
        Finding f;
        f.event = collision_event(c.kind);
        f.key = join(c.workers, "\n");
        f.fingerprint = c.message;
        f.paths = c.workers;
        f.fields.emplace_back("kind", std::string(to_string(c.kind)));
        f.fields.emplace_back("workers", join(c.workers, ","));
        if (c.kind == CollisionKind::duplicate_session) {
            f.fields.emplace_back("session_id", c.session_id);
        } else {
            f.fields.emplace_back("pid", std::to_string(c.pid));
        }
        f.fields.emplace_back("message", c.message);
        out.push_back(std::move(f));
    }

    for (const auto& e : report.walk_errors) {
        Finding f;
        f.event = "dir.unreadable";
        f.key = e.path;
        f.fingerprint = e.message;
        f.paths = {e.path};
        f.fields = {{"path", e.path}, {"error", e.message}};
        out.push_back(std::move(f));
    }
    return out;
}

} // namespace agentlock
