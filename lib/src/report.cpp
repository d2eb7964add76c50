#include <agentlock/pass.hpp>
#include <agentlock/text.hpp>

#include <boost/json.hpp>

namespace agentlock {

namespace json = boost::json;

namespace {

json::string text(std::string_view s) {
    return json::string(to_valid_utf8(s));
}

json::object process_json(const ProcessFacts& p) {
    json::object o;
    static constexpr std::string_view k_states[] = {"alive", "dead", "zombie", "unknown"};
    o["state"] = k_states[static_cast<int>(p.state)];
    if (p.start_ticks) {
        o["start_ticks"] = *p.start_ticks;
    }
    if (p.start_time) {
        o["start_time"] = format_rfc3339(*p.start_time);
    }
    if (!p.detail.empty()) {
        o["detail"] = text(p.detail);
    }
    return o;
}

json::object lock_json(const LockRecord& rec) {
    json::object o;
    o["worker"] = text(rec.worker);
    o["lock_path"] = text(rec.lock_path);
    if (rec.info) {
        o["pid"] = rec.info->pid;
        o["session_id"] = text(rec.info->session_id);
        o["hostname"] = text(rec.info->hostname);
        o["acquired_at"] = format_rfc3339(rec.info->acquired_at);
        o["process"] = process_json(rec.process);
    } else {
        o["pid"] = nullptr;
        o["session_id"] = nullptr;
        o["hostname"] = nullptr;
        o["acquired_at"] = nullptr;
    }
    o["verdict"] = to_string(rec.judgement.verdict);
    o["reason"] = text(rec.judgement.reason);
    o["action"] = to_string(rec.action);
    if (!rec.detail.empty()) {
        o["detail"] = text(rec.detail);
    }
    if (rec.action == LockAction::removed || rec.action == LockAction::would_remove) {
        o["content"] = text(rec.content);
    }
    return o;
}

} // namespace

std::string report_to_json(const PassReport& report) {
    json::object doc;
    json::array roots;
    json::array root_errors;
    for (const auto& r : report.roots) {
        roots.push_back(text(r.path));
        if (!r.ok) {
            root_errors.push_back(json::object{{"root", text(r.path)}, {"error", text(r.error)}});
        }
    }
    doc["roots"] = std::move(roots);
    doc["root_errors"] = std::move(root_errors);
    doc["tmux"] =
        json::object{{"state", to_string(report.tmux.state)}, {"detail", text(report.tmux.detail)}};
    json::array locks;
    for (const auto& rec : report.locks) {
        locks.push_back(lock_json(rec));
    }
    doc["locks"] = std::move(locks);
    json::array collisions;
    for (const auto& c : report.collisions) {
        json::array workers;
        for (const auto& w : c.workers) {
            workers.push_back(text(w));
        }
        json::object o{{"kind", to_string(c.kind)},
                       {"workers", std::move(workers)},
                       {"pid", c.pid},
                       {"session_id", text(c.session_id)},
                       {"message", text(c.message)}};
        collisions.push_back(std::move(o));
    }
    doc["collisions"] = std::move(collisions);
    json::array walk_errors;
    for (const auto& e : report.walk_errors) {
        walk_errors.push_back(json::object{{"path", text(e.path)}, {"message", text(e.message)}});
    }
    doc["walk_errors"] = std::move(walk_errors);
    doc["stats"] = json::object{{"dirs", report.stats.dirs},
                                {"locks", report.stats.locks},
                                {"removed", report.stats.removed},
                                {"unreadable_dirs", report.stats.unreadable_dirs},
                                {"elapsed_ms", report.stats.elapsed_ms}};
    return json::serialize(doc);
}

} // namespace agentlock
