#include "command_line.hpp"

#include <agentlock/duration.hpp>

#include <charconv>
#include <climits>

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

    std::optional<std::string> value(const std::string& flag, std::string& error) {
        if (m_inline) {
            return std::exchange(m_inline, std::nullopt);
        }
        if (done()) {
            error = flag + " needs a value";
            return std::nullopt;
        }
        return m_args[m_next++];
    }

private:
    const std::vector<std::string>& m_args;
    std::size_t m_next = 0;
    std::optional<std::string> m_inline;
};

bool set_mode(CommandLine& cl, Mode mode, const std::string& flag, std::string& error) {
    if (cl.mode != Mode::run && cl.mode != mode) {
        error = flag + " cannot be combined with another of --once, --check-config, --version, "
                       "--help";
        return false;
    }
    cl.mode = mode;
    return true;
}

} // namespace

std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                              std::string& error) {
    CommandLine cl;
    ConfigOverrides& o = cl.overrides;
    ArgCursor cursor(args);
    while (!cursor.done()) {
        const std::string flag = cursor.next_flag();
        auto take = [&]() { return cursor.value(flag, error); };
        auto take_duration = [&]() -> std::optional<std::chrono::milliseconds> {
            auto text = take();
            if (!text) {
                return std::nullopt;
            }
            auto d = parse_duration(*text);
            if (!d) {
                error = flag + ": " + d.error().message;
                return std::nullopt;
            }
            return *d;
        };
        auto no_value = [&]() {
            if (cursor.has_inline_value()) {
                error = flag + " takes no value";
                return false;
            }
            return true;
        };

        if (flag == "--config") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            if (v->empty()) {
                error = "--config needs a file name";
                return std::nullopt;
            }
            cl.config_path = *v;
        } else if (flag == "--root") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            if (!o.roots) {
                o.roots.emplace();
            }
            o.roots->push_back(*v);
        } else if (flag == "--interval") {
            if (!(o.interval = take_duration())) {
                return std::nullopt;
            }
        } else if (flag == "--full-pass-interval") {
            if (!(o.full_pass_interval = take_duration())) {
                return std::nullopt;
            }
        } else if (flag == "--events" || flag == "--no-events") {
            if (!no_value()) {
                return std::nullopt;
            }
            o.events = flag == "--events";
        } else if (flag == "--events-test-disable") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            std::string_view rest(*v);
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                const std::string name(rest.substr(0, comma));
                if (name != "pidfd" && name != "inotify") {
                    error = "--events-test-disable: \"" + name + "\" is not pidfd or inotify";
                    return std::nullopt;
                }
                cl.events_test_disable.push_back(name);
                rest =
                    comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
        } else if (flag == "--tmux-created-slack") {
            if (!(o.tmux_created_slack = take_duration())) {
                return std::nullopt;
            }
        } else if (flag == "--tmux-timeout") {
            if (!(o.tmux_timeout = take_duration())) {
                return std::nullopt;
            }
        } else if (flag == "--tmux-socket") {
            if (!(o.tmux_socket = take())) {
                return std::nullopt;
            }
        } else if (flag == "--tmux-socket-path") {
            if (!(o.tmux_socket_path = take())) {
                return std::nullopt;
            }
        } else if (flag == "--dry-run" || flag == "--no-dry-run") {
            if (!no_value()) {
                return std::nullopt;
            }
            o.dry_run = flag == "--dry-run";
        } else if (flag == "--prune") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            if (!o.prune) {
                o.prune.emplace();
            }
            o.prune->push_back(*v);
        } else if (flag == "--no-prune") {
            if (!no_value()) {
                return std::nullopt;
            }
            o.prune.emplace();
        } else if (flag == "--max-depth") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            unsigned depth = 0;
            const char* end = v->data() + v->size();
            auto [ptr, ec] = std::from_chars(v->data(), end, depth);
            if (ec != std::errc() || ptr != end || v->empty()) {
                error = "--max-depth: \"" + *v + "\" is not a whole number from 0 to " +
                        std::to_string(UINT_MAX);
                return std::nullopt;
            }
            o.max_depth = depth;
        } else if (flag == "--one-file-system" || flag == "--no-one-file-system") {
            if (!no_value()) {
                return std::nullopt;
            }
            o.one_file_system = flag == "--one-file-system";
        } else if (flag == "--log-level") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            if (!(o.log_level = parse_log_level(*v))) {
                error = "--log-level: \"" + *v + "\" is not one of trace, debug, info, warn, error";
                return std::nullopt;
            }
        } else if (flag == "--log-format") {
            auto v = take();
            if (!v) {
                return std::nullopt;
            }
            if (!(o.log_format = parse_log_format(*v))) {
                error = "--log-format: \"" + *v + "\" is not one of auto, text, json, journal";
                return std::nullopt;
            }
        } else if (flag == "--once") {
            if (!no_value() || !set_mode(cl, Mode::once, flag, error)) {
                return std::nullopt;
            }
        } else if (flag == "--json") {
            if (!no_value()) {
                return std::nullopt;
            }
            cl.json = true;
        } else if (flag == "--check-config") {
            if (!no_value() || !set_mode(cl, Mode::check_config, flag, error)) {
                return std::nullopt;
            }
        } else if (flag == "--version") {
            if (!no_value() || !set_mode(cl, Mode::version, flag, error)) {
                return std::nullopt;
            }
        } else if (flag == "--help" || flag == "-h") {
            if (!no_value() || !set_mode(cl, Mode::help, flag, error)) {
                return std::nullopt;
            }
        } else if (flag.rfind('-', 0) == 0) {
            error = "unknown option " + flag + " (see --help)";
            return std::nullopt;
        } else {
            error = "unexpected argument \"" + flag + "\" (see --help)";
            return std::nullopt;
        }
    }
    if (cl.json && cl.mode != Mode::once) {
        error = "--json works only with --once";
        return std::nullopt;
    }
    if (cl.overrides.tmux_socket && cl.overrides.tmux_socket_path) {
        error = "--tmux-socket and --tmux-socket-path cannot be used together";
        return std::nullopt;
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

Events (default on; key "events"):
  owner death            a pidfd per live owner PID: when it exits, its locks are judged again
                         at once (owners beyond the open-files budget are polled every interval)
  lock changes           inotify on the roots, the directories below them down to the deepest
                         known worker (not inside workers), every worker's .runtime, and new
                         directories: a created, rewritten or removed agent.lock is judged
                         again within about 20 ms; a new directory is searched
  tmux sessions          while a lock is held-by-session, tmux is asked every 300 ms; when its
                         session is gone, the lock is judged again
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
