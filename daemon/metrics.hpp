#pragma once
// agentlockd's metrics for node_exporter's textfile collector: what the daemon knows now, as
// Prometheus's text exposition format, written atomically to the `metrics_file` (a `*.prom`
// file in the collector's directory) at start, after every pass and after every batch of
// re-checks that changed it. The collector reads only `*.prom` files, rejects a file whose
// samples carry timestamps, and may read at any moment: hence no timestamps, and a temporary
// file (named `.<name>.XXXXXX`, which the collector skips) renamed over the old one.

#include "event_log.hpp"
#include "work.hpp"

#include <agentlock/config.hpp>
#include <agentlock/monitor.hpp>
#include <agentlock/result.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/verdict.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock::daemon {

/// Every verdict, in the order the metrics list them.
inline constexpr std::array<Verdict, 8> k_metric_verdicts = {
    Verdict::live,    Verdict::stale,   Verdict::held_by_session, Verdict::orphaned,
    Verdict::foreign, Verdict::invalid, Verdict::unknown,         Verdict::host_gone};

/// The triggers of a removal: a full pass, then the events (docs/logging.md).
inline constexpr std::array<std::string_view, 5> k_removal_triggers = {"pass", "pidfd", "inotify",
                                                                       "tmux", "poll"};

/// Event sources that can fall back to polling (events.degraded).
inline constexpr std::array<std::string_view, 2> k_event_sources = {"pidfd", "inotify"};

/// One tmux server as the daemon last heard from it.
struct TmuxServerMetric {
    std::string server; ///< as logged: "default", "-L NAME", "-S PATH"
    TmuxState state = TmuxState::unknown;
};

/// Everything the metrics file says.
struct MetricsSnapshot {
    std::array<std::uint64_t, k_metric_verdicts.size()> locks{}; ///< by k_metric_verdicts
    /// Removals since start by trigger; every k_removal_triggers entry is listed, 0 included.
    std::map<std::string, std::uint64_t> removals;
    std::uint64_t duplicate_sessions = 0; ///< collisions of kind duplicate-session now
    std::uint64_t duplicate_pids = 0;     ///< collisions of kind duplicate-pid now
    std::vector<TmuxServerMetric> tmux_servers;
    std::uint64_t passes = 0; ///< full passes completed since start
    std::optional<double> last_pass_duration_seconds;
    std::optional<double> last_pass_end_unix_seconds;
    std::set<std::string> degraded; ///< event sources (k_event_sources) fallen back to polling
};

/// The snapshot in Prometheus's text exposition format: for each family a HELP and a TYPE line,
/// then its samples; every verdict, trigger, collision kind and event source listed (0
/// included); no timestamps; ends with a newline. Before the first pass (`passes` 0), the
/// families that only a pass can tell (locks, collisions, pass duration and time) have no
/// sample. Pure.
std::string format_metrics(const MetricsSnapshot& snapshot);

/// `value` escaped for a label value in the text format: backslash, double quote, newline.
std::string escape_label_value(std::string_view value);

/// Replaces `path` with `text` atomically: a temporary file `.<name>.XXXXXX` in the same
/// directory, mode 0644 (node_exporter runs as another user), written, fsync'ed, renamed over
/// `path`. A reader sees the old file or the new one, never a part. On failure the temporary
/// file is removed and `path` is untouched; the error names the call and the path.
Status write_file_atomically(const std::string& path, std::string_view text);

/// The daemon's metrics: counts what passes and re-checks did, reads the lock table, and writes
/// the file when its text changed. Lives on the event loop thread. Does nothing while the
/// config names no metrics_file.
class MetricsWriter {
public:
    explicit MetricsWriter(EventLog& log) : m_log(log) {}

    /// Writes what is known now (at start: no pass yet).
    void update(const Config& config, const Monitor& monitor,
                const std::set<std::string>& degraded);
    /// After a full pass, once the monitor has taken it: counts it and its removals, then
    /// update.
    void pass_done(const PassOutcome& outcome, const Config& config, const Monitor& monitor,
                   const std::set<std::string>& degraded);
    /// After a batch of re-checks, once the monitor has taken it: counts its removals by
    /// trigger and notes tmux's answer, then update (which writes only if something changed).
    void batch_done(const BatchOutcome& outcome, const Config& config, const Monitor& monitor,
                    const std::set<std::string>& degraded);

    /// The snapshot update would write now.
    MetricsSnapshot snapshot(const Config& config, const Monitor& monitor,
                             const std::set<std::string>& degraded) const;

private:
    void note_tmux(const Config& config, TmuxState state);

    EventLog& m_log;
    std::map<std::string, std::uint64_t> m_removals;
    std::uint64_t m_passes = 0;
    std::optional<double> m_pass_seconds;
    std::optional<double> m_pass_end;
    std::optional<TmuxServerMetric> m_tmux;
    /// Locks by verdict of the last pass when the monitor did not take its summaries into its
    /// table (events off): then the table is not the truth.
    std::optional<std::array<std::uint64_t, k_metric_verdicts.size()>> m_pass_locks;
    std::uint64_t m_duplicate_sessions = 0; ///< as of the last pass or batch
    std::uint64_t m_duplicate_pids = 0;
    std::string m_written_path;
    std::string m_written_text;
    bool m_failing = false; ///< the last write failed (logged once, until one succeeds)
};

} // namespace agentlock::daemon
