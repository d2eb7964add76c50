#include "command_line.hpp"

#include <agentlock/duration.hpp>

#include <charconv>
#include <climits>
#include <optional>
#include <utility>

#ifndef AGENTLOCK_VERSION
#define AGENTLOCK_VERSION "0.0.0"
#endif

namespace agentlock::daemon {

namespace {

// Walks the argument list, handing out values for flags that take one.
class ArgCursor {
public:
    explicit ArgCursor(const std::vector<std::string>& args) : m_args(args) {}

    bool done() const { return m_next >= m_args.size(); }

    // Splits the next argument into a flag and an inline "=value", if any.
    std::string next_flag() {
        std::string arg = m_args[m_next++];
        m_inline.reset();
        if (arg.rfind("--", 0) == 0) {
            const auto eq = arg.find('=');
            if (eq != std::string::npos) {
                m_inline = arg.substr(eq + 1);
                arg.resize(eq);
            }
        }
        return arg;
    }

    bool has_inline_value() const { return m_inline.has_value(); }

    Result<std::string> value(const std::string& flag) {
        if (m_inline) {
            return *std::exchange(m_inline, std::nullopt);
        }
        if (done()) {
            return invalid_input(flag, flag + " needs a value");
        }
        return m_args[m_next++];
    }

    // A duration (500ms, 30s, 5m, 1h) as the flag's value.
    Result<std::chrono::milliseconds> duration(const std::string& flag) {
        auto text = value(flag);
        if (!text) {
            return text.error();
        }
        auto d = parse_duration(*text);
        if (!d) {
            return invalid_input(flag, flag + ": " + d.error().message);
        }
        return *d;
    }

    // Fails when a flag that takes no value was given one (--dry-run=yes).
    Status no_value(const std::string& flag) const {
        if (has_inline_value()) {
            return invalid_input(flag, flag + " takes no value");
        }
        return {};
    }

private:
    const std::vector<std::string>& m_args;
    std::size_t m_next = 0;
    std::optional<std::string> m_inline;
};

Status set_mode(CommandLine& cl, Mode mode, const std::string& flag) {
    if (cl.mode != Mode::run && cl.mode != mode) {
        return invalid_input(flag, flag + " cannot be combined with another of --once, "
                                          "--check-config, --version, --help");
    }
    cl.mode = mode;
    return {};
}

// Stores a value that parsed into `out`, or passes the failure on.
template <typename T, typename Out> Status store(Result<T> parsed, Out& out) {
    if (!parsed) {
        return parsed.error();
    }
    out = std::move(*parsed);
    return {};
}

// Applies one flag (with its value, taken from `cursor`) to `cl`.
Status apply_flag(CommandLine& cl, ArgCursor& cursor, const std::string& flag) {
    ConfigOverrides& o = cl.overrides;
    if (flag == "--config") {
        auto v = cursor.value(flag);
        if (!v) {
            return v.error();
        }
        if (v->empty()) {
            return invalid_input(flag, "--config needs a file name");
        }
        cl.config_path = *v;
        return {};
    }
    if (flag == "--root") {
        auto v = cursor.value(flag);
        if (!v) {
            return v.error();
        }
        if (!o.roots) {
            o.roots.emplace();
        }
        o.roots->push_back(*v);
        return {};
    }
    if (flag == "--interval") {
        return store(cursor.duration(flag), o.interval);
    }
    if (flag == "--full-pass-interval") {
        return store(cursor.duration(flag), o.full_pass_interval);
    }
    if (flag == "--events" || flag == "--no-events") {
        Status s = cursor.no_value(flag);
        if (s) {
            o.events = flag == "--events";
        }
        return s;
    }
    if (flag == "--tmux-timeout") {
        return store(cursor.duration(flag), o.tmux_timeout);
    }
    if (flag == "--tmux-created-slack") {
        return store(cursor.duration(flag), o.tmux_created_slack);
    }
    if (flag == "--tmux-socket") {
        return store(cursor.value(flag), o.tmux_socket);
    }
    if (flag == "--tmux-socket-path") {
        return store(cursor.value(flag), o.tmux_socket_path);
    }
    if (flag == "--metrics-file") {
        return store(cursor.value(flag), o.metrics_file);
    }
    if (flag == "--dry-run" || flag == "--no-dry-run") {
        Status s = cursor.no_value(flag);
        if (s) {
            o.dry_run = flag == "--dry-run";
        }
        return s;
    }
    if (flag == "--prune") {
        auto v = cursor.value(flag);
        if (!v) {
            return v.error();
        }
        if (!o.prune) {
            o.prune.emplace();
        }
        o.prune->push_back(*v);
        return {};
    }
    if (flag == "--no-prune") {
        Status s = cursor.no_value(flag);
        if (s) {
            o.prune.emplace();
        }
        return s;
    }
    if (flag == "--max-depth") {
        auto v = cursor.value(flag);
        if (!v) {
            return v.error();
        }
        unsigned depth = 0;
        const char* end = v->data() + v->size();
        auto [ptr, ec] = std::from_chars(v->data(), end, depth);
        if (ec != std::errc() || ptr != end || v->empty()) {
            return invalid_input(flag, "--max-depth: \"" + *v +
                                           "\" is not a whole number from 0 to " +
                                           std::to_string(UINT_MAX));
        }
        o.max_depth = depth;
        return {};
    }
    if (flag == "--one-file-system" || flag == "--no-one-file-system") {
        Status s = cursor.no_value(flag);
        if (s) {
            o.one_file_system = flag == "--one-file-system";
        }
        return s;
    }
    if (flag == "--log-level") {
        auto v = cursor.value(flag);
        if (!v) {
            return v.error();
        }
        if (!(o.log_level = parse_log_level(*v))) {
            return invalid_input(flag, "--log-level: \"" + *v +
                                           "\" is not one of trace, debug, info, warn, error");
        }
        return {};
    }
    if (flag == "--log-format") {
        auto v = cursor.value(flag);
        if (!v) {
            return v.error();
        }
        if (!(o.log_format = parse_log_format(*v))) {
            return invalid_input(flag, "--log-format: \"" + *v +
                                           "\" is not one of auto, text, json, journal");
        }
        return {};
    }
    if (flag == "--json") {
        Status s = cursor.no_value(flag);
        if (s) {
            cl.json = true;
        }
        return s;
    }
    const std::pair<const char*, Mode> modes[] = {{"--once", Mode::once},
                                                  {"--check-config", Mode::check_config},
                                                  {"--version", Mode::version},
                                                  {"--help", Mode::help},
                                                  {"-h", Mode::help}};
    for (const auto& [name, mode] : modes) {
        if (flag == name) {
            Status s = cursor.no_value(flag);
            return s ? set_mode(cl, mode, flag) : s;
        }
    }
    if (flag.rfind('-', 0) == 0) {
        return invalid_input(flag, "unknown option " + flag + " (see --help)");
    }
    return invalid_input(flag, "unexpected argument \"" + flag + "\" (see --help)");
}

} // namespace

Result<CommandLine> parse_command_line(const std::vector<std::string>& args) {
    CommandLine cl;
    ArgCursor cursor(args);
    while (!cursor.done()) {
        const std::string flag = cursor.next_flag();
        if (Status s = apply_flag(cl, cursor, flag); !s) {
            return s.error();
        }
    }
    if (cl.json && cl.mode != Mode::once) {
        return invalid_input("--json", "--json works only with --once");
    }
    if (cl.overrides.tmux_socket && cl.overrides.tmux_socket_path) {
        return invalid_input("--tmux-socket-path",
                             "--tmux-socket and --tmux-socket-path cannot be used together");
    }
    return cl;
}

std::string version_text() {
    return std::string("agentlockd ") + AGENTLOCK_VERSION;
}

std::string help_text() {
    return R"(agentlockd: removes stale agent locks (<worker>/.runtime/agent.lock) under worker roots,
and reports orphaned, duplicate and unreadable ones. A lock is removed only when its owner PID is
dead (or reused) and its recorded tmux session is gone; anything uncertain is kept.

Usage:
  agentlockd [--config FILE] [--root DIR]... [--interval DURATION]
             [--full-pass-interval DURATION] [--no-events]
             [--tmux-socket NAME | --tmux-socket-path PATH] [--dry-run]
             [--log-format auto|text|json|journal] [--log-level LEVEL]
             [--metrics-file FILE.prom]
  agentlockd --once [--json] [same options]
  agentlockd --check-config [--config FILE] [same options]
  agentlockd --version | --help

Modes:
  (none)                 run as a daemon until SIGTERM/SIGINT: a full pass at start, then
                         events (see Events) and a full pass every full-pass-interval;
                         without events, a pass every interval
  --once                 run one pass, print a report on stdout, exit; logs go to stderr
  --json                 with --once: print the report as one JSON document
  --check-config         validate the config (file and flags) and exit
  --version, --help

Options (each also a config key; flags win over the file):
  --config FILE          config file; default /etc/agentlockd/agentlockd.json if it exists
  --root DIR             worker root to search; repeat for several (key "roots")
  --interval DURATION    time between pass starts when events are off or unavailable, and
                         between re-checks of owners without a pidfd, e.g. 500ms, 30s, 5m, 1h
                         (default 30s)
  --full-pass-interval D with events: time between full passes, the safety net (default 5m;
                         when only interval is set, passes keep running every interval)
  --no-events            no events: poll with a pass every interval (--events to undo the
                         file's "events": false)
  --tmux-socket NAME     ask the tmux server on socket name NAME (tmux -L)
  --tmux-socket-path P   ask the tmux server on socket path P (tmux -S)
  --tmux-timeout D       how long to wait for tmux before its state is unknown (default 3s)
  --tmux-created-slack D a tmux server or session created more than D after a lock was
                         acquired is not its holder (default 1m)
  --dry-run              judge and report, remove nothing (--no-dry-run to undo the file's)
  --prune NAME           directory name never entered; repeat; replaces the default list
                         (.git .hg .svn node_modules .dolt-data .dolt-backup)
  --no-prune             enter every directory
  --max-depth N          do not descend below depth N (root is 0; default unlimited)
  --one-file-system      stay on each root's file system (default)
  --no-one-file-system   cross mount points
  --log-level LEVEL      trace, debug, info (default), warn, error
  --log-format FORMAT    auto (default: journal when stderr is the journal, else text),
                         text (logfmt lines), json (one object per line), journal
  --metrics-file F.prom  write metrics for node_exporter's textfile collector to F.prom
                         (atomically, at start and whenever they change); "" for none

Events (default on; key "events"):
  owner death            a pidfd per live owner PID: when it exits, its locks are judged again
                         at once (owners beyond the open-files budget are polled every interval)
  lock changes           inotify on the roots, the directories below them down to the deepest
                         known worker (not inside workers), every worker's .runtime, and new
                         directories: a created, rewritten or removed agent.lock is judged
                         again within about 20 ms; a new directory is searched
  tmux sessions          a pidfd on the pane processes and the tmux server of each
                         held-by-session lock: tmux is asked when one exits (else every
                         interval); when its session is gone, the lock is judged again
  Events only trigger a new judgement by the same rule and the same careful removal as a pass.
  Where pidfd or inotify are unavailable, or inotify watches run out, agentlockd falls back to
  polling and logs events.degraded once. lock.removed says what found the lock: trigger=pidfd,
  inotify, tmux, poll or pass.

Signals:
  SIGTERM, SIGINT        stop: no removal starts afterwards; the current pass ends; exit 0
  SIGHUP                 reload the config file; keep the old config if the new one is bad
  SIGUSR1                run a pass now (several while a pass runs lead to one more pass)

Logs: one event per line, e.g.
  2026-01-02T03:04:05.678Z info lock.removed lock_path=/srv/agents/w1/.runtime/agent.lock ...
Findings (lock.orphaned, lock.held_by_session, lock.invalid, lock.foreign, lock.unknown,
lock.would_remove, lock.remove_failed, collision.duplicate_session, collision.duplicate_pid,
dir.unreadable, runtime.symlinked) are logged once when they appear (state=appeared), again
when their content changes (state=changed) and once when they go away: the same event with
state=resolved.
tmux.unreachable/tmux.recovered and root.unavailable/root.recovered pair up the same way.
lock.removed is logged for every removal. See docs/logging.md for every event and field.

Exit codes:
  0  success (daemon stopped by a signal, pass done, config valid)
  1  usage or config error (bad flag, unknown key, wrong type, no root, missing --config file)
  2  failure at start: no root could be walked in the first pass (--once or daemon; no
     READY=1 is sent), or the event loop could not be set up. A root that disappears after
     start-up is logged (root.unavailable), retried every pass, and logged when back
     (root.recovered); the daemon keeps running.
)";
}

} // namespace agentlock::daemon
