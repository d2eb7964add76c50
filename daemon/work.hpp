#pragma once
// What agentlockd's worker thread runs, one piece at a time, for the monitor: a full pass
// (each lock logged as it streams by, then the inotify watches synced with what the pass saw)
// and a batch of re-checks (tmux asked when some lock waits on it, new directories searched,
// each worker judged again with check_worker). Both judge with the library's one rule and
// remove only through its reaper; they never decide what to look at.

#include "dir_watch.hpp"
#include "pass_log.hpp"
#include <agentlock/config.hpp>

#include <agentlock/monitor.hpp>
#include <agentlock/pass.hpp>
#include <agentlock/process_probe.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agentlock::daemon {

/// The server that last answered on each root's socket, by its PID and start time (both unset for
/// "no server running"), as the worker thread saw it in full passes and tmux re-polls. A re-poll
/// that finds another server there has every lock waiting on that socket judged again: a server
/// restarted on the same socket hands out the same %N and $N again, so "the session is still
/// listed" no longer says anything about the locks judged against the old one. Only the worker
/// thread touches it.
struct ServerSeen {
    std::optional<std::int64_t> pid;
    std::optional<Timestamp> started;
    bool operator==(const ServerSeen&) const = default;
};
using ServersSeen = std::map<ServerRef, ServerSeen>;

/// Notes `facts` as `server`'s latest answer; true when it comes from another server than the
/// answer noted before (an unknown answer changes nothing, and the first answer replaces none).
bool note_server(ServersSeen& seen, const ServerRef& server, const TmuxFacts& facts);

/// Runs one pass with `options` (whose cancel flag is set) for `config`, streaming each lock to
/// `sink` as it is handled (a runner may instead keep them in the report's `locks`: they are then
/// logged when it returns). Called on the worker thread, never twice at once.
using PassRunner =
    std::function<PassReport(const PassOptions& options, const Config& config, PassSink& sink)>;

/// The real thing: SystemProcessProbe, a SystemTmuxProbe per root's server, run_pass.
PassRunner system_pass_runner(HostFacts host);

/// Re-checks one worker (check_worker) with `options` for `config`; `fresh_tmux` is an answer
/// just obtained from the worker's root's tmux server, or null. Called on the worker thread,
/// never at the same time as a pass.
using CheckRunner = std::function<WorkerCheck(const std::string& worker, const PassOptions& options,
                                              const Config& config, const TmuxFacts* fresh_tmux)>;

/// Asks one tmux server (a root's, see PassOptions::root_servers) once. Called on the worker
/// thread.
using TmuxRunner = std::function<TmuxFacts(const TmuxServer& server, const Config& config)>;

/// What the worker thread runs. Without `check` or `tmux`, events are unavailable: the daemon
/// polls with a pass every interval.
struct Backend {
    PassRunner pass;
    CheckRunner check;
    TmuxRunner tmux;
};

/// The real backend: run_pass and check_worker with the system probes.
Backend system_backend(const HostFacts& host);

/// The monitor's settings for a config.
MonitorSettings monitor_settings_of(const Config& config);

/// Whether `b` searches other places than `a` or asks another tmux server (the global one or a
/// root's own): what is watched and known must then be rebuilt by a full pass.
bool scope_differs(const Config& a, const Config& b);

/// A full pass as run on the worker thread.
struct PassOutcome {
    std::optional<PassReport> report; ///< unset when the pass failed
    std::string error;
    AddWatch watch = AddWatch::added; ///< syncing the inotify watches after the pass
    std::string watch_error;
};

/// Runs a full pass with `backend`, logging each lock through `log` as it is handled; with
/// `dirs`, then watches the fleet the pass saw (unless `options.cancel` is set). Never throws.
PassOutcome run_full_pass(const Backend& backend, const PassOptions& options, const Config& config,
                          PassLogger& log, DirWatcher* dirs, ServersSeen* seen = nullptr);

/// A batch of re-checks as run on the worker thread.
struct BatchOutcome {
    std::vector<CheckOutcome> checks;
    /// The tmux re-poll's answer: the first unknown answer of the servers asked, else the
    /// first answer (so that one server that cannot be reached slows the re-poll down).
    std::optional<TmuxFacts> tmux;
    std::vector<TmuxServerReport> tmux_servers; ///< each server the re-poll asked, its answer
    AddWatch watch = AddWatch::added;
    std::string watch_error;
    std::size_t scans = 0; ///< new directories searched
    std::string error;
    std::uint64_t elapsed_ms = 0;
};

/// Runs `batch`: asks each tmux server some lock waits on (once, for all the locks of the roots
/// it serves) and adds the workers its answer frees; with
/// `dirs`, searches (and watches) the new directories; then judges every worker, stopping
/// before the next one once `options.cancel` is set. Never throws.
BatchOutcome run_recheck_batch(const Backend& backend, RecheckBatch batch,
                               const PassOptions& options, const Config& config, DirWatcher* dirs,
                               ServersSeen* seen = nullptr);

/// Logs what a batch of re-checks did: check.failed, each lock's outcome and findings
/// (PassLogger::log_checks, against the collisions and frozen roots `table` knows now),
/// check.completed and tmux.polled.
void log_recheck_batch(const BatchOutcome& outcome, const LockTable& table, PassLogger& log,
                       EventLog& events);

} // namespace agentlock::daemon
