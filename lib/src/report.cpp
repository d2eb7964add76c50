#include <agentlock/pass.hpp>
#include <agentlock/text.hpp>

#include <boost/json.hpp>
#include <sstream>

namespace agentlock {

namespace json = boost::json;

namespace {

json::string text(std::string_view s) {
    return json::string(escape_invalid_utf8(s)); // as the logs write it
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

JsonReportWriter::JsonReportWriter(std::ostream& out) : m_out(out) {}

void JsonReportWriter::on_tmux(const std::vector<TmuxServerReport>& servers) {
    static const TmuxFacts k_none;
    const TmuxFacts& first = servers.empty() ? k_none : servers.front().facts;
    json::array all;
    for (const auto& s : servers) {
        json::array roots;
        for (const auto& r : s.roots) {
            roots.push_back(text(r));
        }
        all.push_back(json::object{{"server", text(describe_tmux_server(s.server))},
                                   {"roots", std::move(roots)},
                                   {"state", to_string(s.facts.state)},
                                   {"detail", text(s.facts.detail)},
                                   {"sessions", s.facts.session_ids.size()},
                                   {"panes", s.facts.pane_ids.size()}});
    }
    m_out << "{\"tmux\":"
          << json::serialize(
                 json::object{{"state", to_string(first.state)}, {"detail", text(first.detail)}})
          << ",\"tmux_servers\":" << json::serialize(all) << ",\"locks\":[";
}

void JsonReportWriter::on_lock(LockRecord&& record) {
    if (m_locks++ > 0) {
        m_out << ',';
    }
    m_out << json::serialize(lock_json(record));
}

void JsonReportWriter::finish(const PassReport& report) {
    json::array roots;
    json::array root_errors;
    for (const auto& r : report.roots) {
        roots.push_back(text(r.path));
        if (!r.ok) {
            root_errors.push_back(json::object{{"root", text(r.path)}, {"error", text(r.error)}});
        }
    }
    m_out << "],\"roots\":" << json::serialize(roots)
          << ",\"root_errors\":" << json::serialize(root_errors) << ",\"collisions\":[";
    bool first = true;
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
        m_out << (first ? "" : ",") << json::serialize(o);
        first = false;
    }
    json::array walk_errors;
    for (const auto& e : report.walk_errors) {
        walk_errors.push_back(json::object{{"path", text(e.path)}, {"message", text(e.message)}});
    }
    json::array skipped;
    for (const auto& e : report.skipped_runtimes) {
        skipped.push_back(json::object{{"path", text(e.path)}, {"message", text(e.message)}});
    }
    m_out << "],\"walk_errors\":" << json::serialize(walk_errors)
          << ",\"skipped_runtimes\":" << json::serialize(skipped) << ",\"stats\":"
          << json::serialize(json::object{{"dirs", report.stats.dirs},
                                          {"locks", report.stats.locks},
                                          {"removed", report.stats.removed},
                                          {"would_remove", report.stats.would_remove},
                                          {"unreadable_dirs", report.stats.unreadable_dirs},
                                          {"symlinked_runtimes", report.stats.symlinked_runtimes},
                                          {"elapsed_ms", report.stats.elapsed_ms}})
          << '}';
}

std::string report_to_json(const PassReport& report) {
    std::ostringstream out;
    JsonReportWriter writer(out);
    replay_report(report, writer);
    return std::move(out).str();
}

} // namespace agentlock
