#pragma once
// Turns pass reports into log events, logging changes only, and into one-line summaries.

#include "event_log.hpp"

#include <agentlock/findings.hpp>
#include <agentlock/monitor.hpp>
#include <agentlock/pass.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace agentlock::daemon {

/// How often pass.completed is logged at info level (it is logged at debug after every pass).
inline constexpr std::chrono::minutes k_pass_summary_every{5};

/// Logs what each pass and re-check did and found. Lives on the event loop thread.
class PassLogger {
public:
    explicit PassLogger(EventLog& log,
                        std::chrono::steady_clock::duration summary_every = k_pass_summary_every);

    /// Logs one finished pass whose records are in `report.locks`: begin_pass, log_lock for
    /// each, end_pass (with summaries and the would-remove count made from the records when
    /// the report has none).
    void log_pass(const PassReport& report, bool cancelled,
                  std::chrono::steady_clock::time_point now);

    // A streaming pass is logged in three steps, on whatever thread runs the pass, but never
    // while anything else uses this logger: begin_pass, log_lock for each lock as the pass
    // handles it, then end_pass with the report.

    /// Starts logging a pass.
    void begin_pass();
    /// Logs one lock now: lock.removed for a removal, lock.skipped_changed (debug) for a lock
    /// that changed under the reaper, and its finding if it appeared or changed.
    void log_lock(const LockRecord& record, const TmuxFacts& tmux);
    /// Ends the pass: the transitions of the other findings (duplicate claims, tmux, roots,
    /// unreadable directories), the findings that went away (resolved, with what became of a
    /// lock), and pass.completed (info on the first pass and at most every `summary_every`,
    /// debug otherwise). A cancelled pass saw only part of the roots: nothing is resolved and
    /// only the findings of its locks are logged.
    void end_pass(const PassReport& report, bool cancelled,
                  std::chrono::steady_clock::time_point now);

    /// Logs re-checks as a pass would log their locks: lock.removed (with `trigger`) for every
    /// removal, lock.skipped_changed (debug), and the transitions of each re-checked lock's own
    /// findings, leaving every other finding alone; then the transitions of the duplicate-claim
    /// findings against `collisions` (the collisions among all known locks now). `known_tmux`
    /// is the evidence for locks whose re-check did not ask tmux; `frozen_roots` are roots the
    /// last pass could not walk (their findings stay as they are).
    void log_checks(const std::vector<CheckOutcome>& checks, const TmuxFacts& known_tmux,
                    const std::vector<Collision>& collisions,
                    const std::vector<std::string>& frozen_roots);

    /// Findings open now.
    std::size_t open_findings() const { return m_findings.open_count(); }

    /// Passes logged so far.
    std::uint64_t pass_count() const { return m_passes; }

private:
    EventLog& m_log;
    FindingTracker m_findings;
    std::chrono::steady_clock::duration m_summary_every;
    std::optional<std::chrono::steady_clock::time_point> m_last_summary;
    std::uint64_t m_passes = 0;
};

/// The level a finding transition is logged at: resolved ones at info, the others by event
/// (warn for what needs attention, info for what is only worth knowing, error for failures).
LogLevel finding_level(const FindingChange& change);

/// The fields of a finding transition as logged: state first, then the finding's own fields.
Fields finding_event_fields(const FindingChange& change);

/// Duplicate-session and duplicate-pid collisions in a report.
std::size_t duplicate_claims(const PassReport& report);

/// tmux's state in a pass, for pass.completed and STATUS=: the state of its one server, or
/// with several servers how many answered each way ("2 ok,1 unknown").
std::string tmux_summary(const PassReport& report);

/// One line for systemd's STATUS=, e.g. "pass 12: 340 locks, 3 removed, tmux ok, 2 collisions".
std::string status_line(std::uint64_t pass_number, const PassReport& report);

/// A human-readable report of one pass, for `--once` without `--json`: tmux's state, one line
/// per lock, then roots, collisions, unreadable directories and stats.
std::string format_report_text(const PassReport& report);

/// Writes format_report_text's report while a streaming pass runs (see JsonReportWriter).
class TextReportWriter final : public PassSink {
public:
    explicit TextReportWriter(std::ostream& out);
    void on_tmux(const std::vector<TmuxServerReport>& servers) override;
    void on_lock(LockRecord&& record) override;
    void finish(const PassReport& report);

private:
    std::ostream& m_out;
};

} // namespace agentlock::daemon
