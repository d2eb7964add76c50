#include "metrics.hpp"

#include <agentlock/fd.hpp>

#include <algorithm>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock::daemon {

namespace {

constexpr std::array<TmuxState, 3> k_tmux_states = {TmuxState::ok, TmuxState::no_server,
                                                    TmuxState::unknown};

// Appends the HELP and TYPE lines of one family.
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// Appends one sample: name{labels} value.
void sample(std::string& out, std::string_view name, std::string_view labels,
            std::string_view value) {
    out.append(name);
    if (!labels.empty()) {
        out.append("{").append(labels).append("}");
    }
    out.append(" ").append(value).append("\n");
}

std::string label(std::string_view key, std::string_view value) {
    return std::string(key) + "=\"" + escape_label_value(value) + "\"";
}

// Seconds with millisecond precision, as Prometheus reads floats.
std::string seconds(double s) {
    char buf[64];
    if (std::snprintf(buf, sizeof buf, "%.3f", s) < 0) {
        return "NaN"; // a formatting failure must not read as a real value
    }
    return buf;
}

std::size_t verdict_index(Verdict verdict) {
    const auto at = std::find(k_metric_verdicts.begin(), k_metric_verdicts.end(), verdict);
    return static_cast<std::size_t>(at - k_metric_verdicts.begin());
}

double unix_seconds_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Removes a temporary file unless it was renamed into place.
class TempFile {
public:
    explicit TempFile(std::string path) : m_path(std::move(path)) {}
    ~TempFile() {
        if (!m_committed) {
            ::unlink(m_path.c_str()); // best effort: the error that got us here is reported
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::string& path() const { return m_path; }
    void commit() { m_committed = true; }

private:
    std::string m_path;
    bool m_committed = false;
};

} // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_metrics(const MetricsSnapshot& s) {
    const bool passed = s.passes > 0;
    std::string out;

    family(out, "agentlock_locks", "gauge",
           "Locks under the roots by verdict, as of the last pass and the re-checks since.");
    for (std::size_t i = 0; passed && i < k_metric_verdicts.size(); ++i) {
        sample(out, "agentlock_locks", label("verdict", to_string(k_metric_verdicts[i])),
               std::to_string(s.locks[i]));
    }

    family(out, "agentlock_removals_total", "counter",
           "Stale locks removed since agentlockd started, by what found them.");
    std::map<std::string, std::uint64_t> removals = s.removals;
    for (const auto trigger : k_removal_triggers) {
        removals.try_emplace(std::string(trigger), 0);
    }
    for (const auto trigger : k_removal_triggers) {
        sample(out, "agentlock_removals_total", label("trigger", trigger),
               std::to_string(removals[std::string(trigger)]));
    }
    for (const auto& [trigger, n] : removals) { // a trigger the list above does not know yet
        if (std::find(k_removal_triggers.begin(), k_removal_triggers.end(), trigger) ==
            k_removal_triggers.end()) {
            sample(out, "agentlock_removals_total", label("trigger", trigger), std::to_string(n));
        }
    }

    family(out, "agentlock_collisions", "gauge",
           "Duplicate claims among the known locks: one session or one live PID in several "
           "workers.");
    if (passed) {
        sample(out, "agentlock_collisions", label("kind", "duplicate-session"),
               std::to_string(s.duplicate_sessions));
        sample(out, "agentlock_collisions", label("kind", "duplicate-pid"),
               std::to_string(s.duplicate_pids));
    }

    family(out, "agentlock_tmux_server_state", "gauge",
           "1 for the state of each tmux server at its last answer (ok, no-server, unknown), 0 "
           "for the others.");
    for (const auto& server : s.tmux_servers) {
        for (const TmuxState state : k_tmux_states) {
            sample(out, "agentlock_tmux_server_state",
                   label("server", server.server) + "," + label("state", to_string(state)),
                   server.state == state ? "1" : "0");
        }
    }

    family(out, "agentlock_passes_total", "counter", "Full passes completed since start.");
    sample(out, "agentlock_passes_total", "", std::to_string(s.passes));

    family(out, "agentlock_pass_duration_seconds", "gauge", "How long the last full pass took.");
    if (passed && s.last_pass_duration_seconds) {
        sample(out, "agentlock_pass_duration_seconds", "", seconds(*s.last_pass_duration_seconds));
    }

    family(out, "agentlock_last_pass_timestamp_seconds", "gauge",
           "When the last full pass ended, in seconds since the Unix epoch.");
    if (passed && s.last_pass_end_unix_seconds) {
        sample(out, "agentlock_last_pass_timestamp_seconds", "",
               seconds(*s.last_pass_end_unix_seconds));
    }

    family(out, "agentlock_events_degraded", "gauge",
           "1 when an event source fell back to polling since start (events.degraded), else 0.");
    for (const auto source : k_event_sources) {
        sample(out, "agentlock_events_degraded", label("source", source),
               s.degraded.count(std::string(source)) > 0 ? "1" : "0");
    }
    return out;
}

Status write_file_atomically(const std::string& path, std::string_view text) {
    const std::size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    // Hidden, and not ending in .prom: the collector never reads it half-written.
    std::string pattern = (slash == std::string::npos ? "" : dir) + "." + name + ".XXXXXX";
    const int raw = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (raw < 0) {
        const int saved = errno;
        return io_error("create a temporary file in", dir, saved);
    }
    Fd fd(raw);
    TempFile temp(pattern);
    if (::fchmod(fd.get(), 0644) != 0) {
        const int saved = errno;
        return io_error("chmod", temp.path(), saved);
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0) {
            const int saved = errno;
            if (saved == EINTR) {
                continue;
            }
            return io_error("write", temp.path(), saved);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
        const int saved = errno;
        return io_error("fsync", temp.path(), saved);
    }
    if (::close(fd.release()) != 0) {
        const int saved = errno;
        return io_error("close", temp.path(), saved);
    }
    if (::rename(temp.path().c_str(), path.c_str()) != 0) {
        const int saved = errno;
        return io_error("rename " + temp.path() + " to", path, saved);
    }
    temp.commit();
    return {};
}

void MetricsWriter::note_tmux(const Config& config, TmuxState state) {
    m_tmux = TmuxServerMetric{describe_tmux_server(config), state};
}

void MetricsWriter::pass_done(const PassOutcome& outcome, const Config& config,
                              const Monitor& monitor, const std::set<std::string>& degraded) {
    if (const auto& report = outcome.report) {
        ++m_passes;
        m_removals["pass"] += report->stats.removed;
        m_pass_seconds = static_cast<double>(report->stats.elapsed_ms) / 1000.0;
        m_pass_end = unix_seconds_now();
        note_tmux(config, report->tmux.state);
        m_pass_locks.reset();
        if (!report->summaries.empty() || !monitor.events_on()) {
            // The monitor keeps a table only while events are on, and takes the summaries then.
            auto& counts = m_pass_locks.emplace();
            counts.fill(0);
            for (const auto& lock : report->summaries) {
                counts[verdict_index(lock.verdict)] += lock.action == LockAction::removed ? 0 : 1;
            }
        }
        m_duplicate_sessions = 0;
        m_duplicate_pids = 0;
        for (const auto& c : report->collisions) {
            m_duplicate_sessions += c.kind == CollisionKind::duplicate_session ? 1u : 0u;
            m_duplicate_pids += c.kind == CollisionKind::duplicate_pid ? 1u : 0u;
        }
    }
    update(config, monitor, degraded);
}

void MetricsWriter::batch_done(const BatchOutcome& outcome, const Config& config,
                               const Monitor& monitor, const std::set<std::string>& degraded) {
    for (const auto& c : outcome.checks) {
        if (c.check.state == WorkerCheck::State::found &&
            c.check.record.action == LockAction::removed) {
            ++m_removals[c.trigger];
        }
        if (c.check.tmux) {
            note_tmux(config, c.check.tmux->state);
        }
    }
    if (outcome.tmux) {
        note_tmux(config, outcome.tmux->state); // asked before the checks: the latest answer
    }
    if (!outcome.checks.empty()) {
        m_duplicate_sessions = 0;
        m_duplicate_pids = 0;
        for (const auto& c : monitor.table().collisions()) {
            m_duplicate_sessions += c.kind == CollisionKind::duplicate_session ? 1u : 0u;
            m_duplicate_pids += c.kind == CollisionKind::duplicate_pid ? 1u : 0u;
        }
    }
    update(config, monitor, degraded);
}

MetricsSnapshot MetricsWriter::snapshot(const Config& config, const Monitor& monitor,
                                        const std::set<std::string>& degraded) const {
    MetricsSnapshot s;
    if (m_pass_locks) {
        s.locks = *m_pass_locks;
    } else {
        const LockTable& table = monitor.table();
        table.for_each_worker([&](const std::string& worker) {
            if (const LockSummary* lock = table.find(worker)) {
                ++s.locks[verdict_index(lock->verdict)];
            }
        });
    }
    s.removals = m_removals;
    s.duplicate_sessions = m_duplicate_sessions;
    s.duplicate_pids = m_duplicate_pids;
    if (m_tmux && m_tmux->server == describe_tmux_server(config)) {
        s.tmux_servers.push_back(*m_tmux);
    }
    s.passes = m_passes;
    s.last_pass_duration_seconds = m_pass_seconds;
    s.last_pass_end_unix_seconds = m_pass_end;
    s.degraded = degraded;
    return s;
}

void MetricsWriter::update(const Config& config, const Monitor& monitor,
                           const std::set<std::string>& degraded) {
    if (config.metrics_file.empty()) {
        return;
    }
    std::string text = format_metrics(snapshot(config, monitor, degraded));
    if (!m_failing && config.metrics_file == m_written_path && text == m_written_text) {
        return; // nothing changed
    }
    if (Status written = write_file_atomically(config.metrics_file, text); !written) {
        if (!m_failing) {
            m_log.log(LogLevel::warn, "metrics.failed",
                      {{"metrics_file", config.metrics_file}, {"error", written.error().message}});
        }
        m_failing = true;
        return;
    }
    if (m_failing) {
        m_log.log(LogLevel::info, "metrics.recovered", {{"metrics_file", config.metrics_file}});
    }
    m_failing = false;
    m_written_path = config.metrics_file;
    m_written_text = std::move(text);
}

} // namespace agentlock::daemon
