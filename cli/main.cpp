// agentlock: take, inspect and release agent locks from a shell, and list them as the daemon
// judges them.

#include "cli.hpp"

#include <agentlock/config.hpp>
#include <agentlock/duration.hpp>
#include <agentlock/explain.hpp>
#include <agentlock/pass.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/text_table.hpp>
#include <agentlock/tmux_probe.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <unistd.h>
#include <utility>
#include <variant>

#ifndef AGENTLOCK_VERSION
#define AGENTLOCK_VERSION "0.0.0"
#endif

namespace agentlock::cli {

namespace {

constexpr std::string_view k_exit_codes = R"(Exit codes:
  0    success
  1    usage: an unknown option, a missing operand, a bad value
  65   the lock file is invalid (unparseable, not a regular file)
  66   the worker does not exist, is a symlink, or is not a directory
  74   a system call failed (the message names it and the path)
  75   locked: another live agent holds the lock (or its liveness cannot be established)
  77   release: the lock belongs to another owner
  78   the config file is invalid
  run: CMD's own exit status once it started; 128+N when a signal N ended it;
       126 when CMD cannot be executed, 127 when it is not found
)";

constexpr std::string_view k_server_help =
    R"(  --config FILE          read the tmux server (and for list, the roots) from FILE
                         (default: ~/.config/agentlockd/agentlockd.json, else
                         /etc/agentlockd/agentlockd.json, when present)
  --tmux-socket NAME     judge sessions on tmux -L NAME
  --tmux-socket-path P   judge sessions on tmux -S P
)";

std::string usage_text() {
    return std::string(R"(Usage: agentlock COMMAND [OPTION...] ...

Take, inspect and release the agent.lock of a worker directory (WORKER/.runtime/agent.lock),
judged by the same rule as agentlockd.

Commands:
  run [--session S] [--wait DUR | --no-wait] WORKER -- CMD [ARG...]
                         take WORKER's lock for CMD, run it, release when it ends
  acquire [--session S] [--pid P] WORKER
                         take WORKER's lock for process P (default: the caller)
  release [--pid P] WORKER
                         remove WORKER's lock if P (default: the caller) holds it
  check WORKER           exit 0 if WORKER is free (a stale lock is removed), 75 if held
  status [--json] WORKER print WORKER's status line
  force-release [--even-if-live] WORKER
                         remove WORKER's lock whoever holds it; print what was removed
  list [--json] [ROOT...]
                         every lock under ROOTs (default: the config's roots) and its
                         verdict; never removes anything
  why WORKER             the verdict on WORKER's lock and the evidence behind it
  help [COMMAND]         this text, or COMMAND's
  version                agentlock's version

Run 'agentlock COMMAND --help' for a command's options.

)") + std::string(k_exit_codes);
}

struct Command {
    std::string_view name;
    std::string_view help;
    std::vector<FlagSpec> flags;
    int (*main)(const Args&);
    std::optional<std::size_t> command_after;
};

std::vector<FlagSpec> with_server(std::vector<FlagSpec> flags) {
    flags.insert(flags.end(), k_server_flags.begin(), k_server_flags.end());
    return flags;
}

int worker_error(const Error& e) {
    return fail(e.kind == ErrorKind::invalid ? k_exit_no_worker : k_exit_io, e.message);
}

// What a subcommand ends with when it cannot do its work: the exit code, the reason already
// printed by fail().
struct Exit {
    int code = k_exit_ok;
};

// A value a subcommand needs before it can do its work, or the Exit it ends with instead: a
// Result whose Error has already been turned into an exit code and a message on stderr.
template <typename T> class OrExit {
public:
    OrExit(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
    OrExit(Exit exit) : m_v(std::in_place_index<1>, exit) {}
    explicit operator bool() const { return m_v.index() == 0; }
    T& operator*() { return std::get<0>(m_v); }
    T* operator->() { return &std::get<0>(m_v); }
    int exit_code() const { return std::get<1>(m_v).code; }

private:
    std::variant<T, Exit> m_v;
};

// The single WORKER operand, checked.
OrExit<std::string> single_worker(const Args& args, std::string_view command) {
    if (args.operands.size() != 1) {
        return Exit{fail(k_exit_usage, std::string(command) +
                                           " needs exactly one WORKER (try agentlock " +
                                           std::string(command) + " --help)")};
    }
    if (Status s = check_worker_dir(args.operands[0]); !s) {
        return Exit{worker_error(s.error())};
    }
    return args.operands[0];
}

// --pid P: a positive pid; the caller's parent (the shell or program that ran us) by default,
// since our own pid is gone as soon as we exit.
OrExit<std::int64_t> owner_pid_of(const Args& args) {
    auto text = args.value("--pid");
    if (!text) {
        return static_cast<std::int64_t>(::getppid());
    }
    char* end = nullptr;
    errno = 0;
    const long long pid = std::strtoll(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || errno != 0 || pid <= 0 || pid > INT32_MAX) {
        return Exit{fail(k_exit_usage, "--pid: \"" + *text + "\" is not a process id")};
    }
    return static_cast<std::int64_t>(pid);
}

// A subcommand's WORKER and the Lock on it for its owner.
struct WorkerLock {
    std::string worker;
    std::int64_t owner = 0;
    Lock lock;
};

// The Lock on the WORKER operand of `command`, for the owner --pid names; only acquire and
// release take --pid (parse_args refuses it elsewhere), so for the others the owner is the
// caller's parent. Checked in this order: WORKER, --pid, the tmux server.
OrExit<WorkerLock> open_lock(const Args& args, std::string_view command) {
    auto worker = single_worker(args, command);
    if (!worker) {
        return Exit{worker.exit_code()};
    }
    auto owner = owner_pid_of(args);
    if (!owner) {
        return Exit{owner.exit_code()};
    }
    auto server = tmux_server_of_args(args, *worker);
    if (!server) {
        return Exit{fail(server.error().kind == ErrorKind::invalid ? k_exit_config : k_exit_io,
                         server.error().message)};
    }
    LockOptions options;
    options.tmux = *server;
    options.owner_pid = *owner;
    return WorkerLock{*worker, *owner, Lock(*worker, options)};
}

// The exit code of what acquire or check found at `worker`: 0 when `s` is ok; for the library's
// locked Error, 75 with "worker W is locked by PID n, ..."; else the Error's own.
int lock_outcome(Lock& lock, const std::string& worker, const Status& s) {
    if (s) {
        return k_exit_ok;
    }
    const Error& e = s.error();
    if (e.kind != ErrorKind::locked) {
        return fail(exit_code_of(e), e.message);
    }
    auto holder = lock.read();
    if (!holder) {
        return fail(k_exit_locked, e.message);
    }
    std::string message = "worker " + worker + " is locked by " + describe_holder(*holder);
    if (const auto verdict = e.message.find(" ["); verdict != std::string::npos) {
        message += " " + e.message.substr(verdict + 1);
    }
    return fail(k_exit_locked, message);
}

int acquire_main(const Args& args) {
    auto opened = open_lock(args, "acquire");
    if (!opened) {
        return opened.exit_code();
    }
    Lock& lock = opened->lock;
    std::string session;
    if (auto s = args.value("--session")) {
        session = *s;
    } else if (const char* pane = std::getenv("TMUX_PANE"); pane != nullptr) {
        session = pane;
    }
    return lock_outcome(lock, opened->worker, lock.acquire(session));
}

int release_main(const Args& args) {
    auto opened = open_lock(args, "release");
    if (!opened) {
        return opened.exit_code();
    }
    Lock& lock = opened->lock;
    Status s = lock.release();
    if (!s) {
        if (s.error().kind == ErrorKind::locked) {
            auto holder = lock.read();
            return fail(k_exit_not_owner,
                        "not releasing " + lock.lock_path() + ": it belongs to " +
                            (holder ? describe_holder(*holder) : std::string("another agent")) +
                            ", not PID " + std::to_string(opened->owner) +
                            " (agentlock force-release removes another owner's lock)");
        }
        return fail(exit_code_of(s.error()), s.error().message);
    }
    return k_exit_ok;
}

int check_main(const Args& args) {
    auto opened = open_lock(args, "check");
    if (!opened) {
        return opened.exit_code();
    }
    Lock& lock = opened->lock;
    return lock_outcome(lock, opened->worker, lock.check());
}

int status_main(const Args& args) {
    auto opened = open_lock(args, "status");
    if (!opened) {
        return opened.exit_code();
    }
    Lock& lock = opened->lock;
    const std::string line = lock.status();
    auto info = lock.read();
    const bool failed = !info && info.error().kind != ErrorKind::not_locked;
    if (args.has("--json")) {
        boost::json::object o;
        o["worker"] = shown(opened->worker);
        o["lock_path"] = shown(lock.lock_path());
        o["status"] = shown(line);
        if (info) {
            o["pid"] = info->pid;
            o["session_id"] = shown(info->session_id);
            o["hostname"] = shown(info->hostname);
            o["acquired_at"] = format_rfc3339(info->acquired_at);
        } else {
            o["pid"] = nullptr;
        }
        std::cout << boost::json::serialize(o) << "\n";
    } else {
        std::cout << shown(line) << "\n";
    }
    return failed ? exit_code_of(info.error()) : k_exit_ok;
}

int force_release_main(const Args& args) {
    auto opened = open_lock(args, "force-release");
    if (!opened) {
        return opened.exit_code();
    }
    Lock& lock = opened->lock;
    auto released = lock.force_release_judged(args.has("--even-if-live"));
    if (!released) {
        const Error& e = released.error();
        if (e.kind == ErrorKind::locked) {
            auto holder = lock.read();
            return fail(k_exit_locked, "not removing it: " + e.message +
                                           (holder ? " (held by " + describe_holder(*holder) + ")"
                                                   : std::string()) +
                                           "; --even-if-live removes it anyway");
        }
        return fail(exit_code_of(e), e.message);
    }
    if (!released->removed) {
        std::cerr << "agentlock: " << shown(opened->worker) << " is not locked: nothing removed\n";
        return k_exit_ok;
    }
    std::cerr << "agentlock: removed " << shown(lock.lock_path()) << ", held by "
              << (released->info ? describe_holder(*released->info) : std::string("nobody: "))
              << "; it was " << to_string(released->judgement.verdict) << ": "
              << shown(released->judgement.reason) << "\n";
    std::cout << shown(released->content);
    if (released->content.empty() || released->content.back() != '\n') {
        std::cout << "\n";
    }
    return k_exit_ok;
}

// The config for list and why: the file, with ROOTs and tmux flags laid over it. A ROOT inside
// a root of the file that has its own tmux server (a gastown town's) is judged against that
// server, unless a tmux flag names one.
Result<Config> list_config(const Args& args, const std::vector<std::string>& roots) {
    ConfigOverrides o;
    if (!roots.empty()) {
        o.roots = roots;
    }
    const auto name = args.value("--tmux-socket");
    const auto path = args.value("--tmux-socket-path");
    if (name) {
        o.tmux_socket = *name;
    }
    if (path) {
        o.tmux_socket_path = *path;
    }
    const std::string file = config_path_of(args);
    auto config = resolve_config(file, o);
    if (!config || roots.empty() || name || path || file.empty()) {
        return config;
    }
    ConfigOverrides file_roots = o;
    file_roots.roots.reset();
    auto from_file = resolve_config(file, file_roots);
    if (!from_file) {
        return config; // the file names no roots of its own
    }
    for (const auto& root : config->roots) {
        const auto outer = root_of_path(*from_file, root);
        if (!outer || from_file->root_tmux.count(*outer) == 0) {
            continue;
        }
        const ServerRef server = tmux_server_of_root(*from_file, *outer);
        if (!server.unresolved.empty()) {
            return invalid_input(file, "config " + file + ": root " + *outer +
                                           ": tmux server not named: " + server.unresolved);
        }
        config->root_tmux[root] =
            RootTmux{server.server.socket_name, server.server.socket_path, false};
    }
    return config;
}

std::string_view verdict_style(Verdict v) {
    switch (v) {
    case Verdict::live:
        return "32";
    case Verdict::held_by_session:
        return "36";
    case Verdict::orphaned:
    case Verdict::unknown:
        return "33";
    case Verdict::stale:
        return "31";
    case Verdict::foreign:
    case Verdict::host_gone:
        return "35";
    case Verdict::invalid:
        return "1;31";
    }
    return "";
}

bool colour_wanted() {
    const char* term = std::getenv("TERM");
    return ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr &&
           !(term != nullptr && std::string_view(term) == "dumb");
}

int list_main(const Args& args) {
    for (const auto& root : args.operands) {
        if (Status s = check_worker_dir(root); !s) {
            std::string message = s.error().message;
            if (const auto at = message.find("worker "); at == 0) {
                message.replace(0, 7, "root ");
            }
            return worker_error(invalid_input(root, message));
        }
    }
    auto config = list_config(args, args.operands);
    if (!config) {
        return fail(config.error().kind == ErrorKind::io ? k_exit_io
                    : args.operands.empty()              ? k_exit_config
                                                         : k_exit_usage,
                    config.error().message);
    }
    PassOptions options = pass_options_of(*config);
    options.dry_run = true; // list never removes anything
    SystemProcessProbe processes;
    SystemTmuxProbes tmux(config->tmux_timeout);
    const PassReport report = run_pass(options, processes, tmux, read_host_facts());

    if (args.has("--json")) {
        std::cout << report_to_json(report) << "\n";
    } else {
        std::vector<std::vector<TableCell>> rows;
        rows.push_back({{"VERDICT", ""},
                        {"PID", ""},
                        {"SESSION", ""},
                        {"HOST", ""},
                        {"AGE", ""},
                        {"WORKER", ""},
                        {"REASON", ""}});
        for (const auto& rec : report.locks) {
            std::vector<TableCell> row;
            row.push_back({std::string(to_string(rec.judgement.verdict)),
                           std::string(verdict_style(rec.judgement.verdict))});
            if (rec.info) {
                row.push_back({std::to_string(rec.info->pid), ""});
                row.push_back(
                    {rec.info->session_id.empty() ? "-" : shown(rec.info->session_id), ""});
                row.push_back({rec.info->hostname.empty() ? "-" : shown(rec.info->hostname), ""});
                row.push_back({format_age(rec.info->acquired_at), ""});
            } else {
                for (int i = 0; i < 4; ++i) {
                    row.push_back({"-", ""});
                }
            }
            row.push_back({shown(rec.worker), ""});
            row.push_back({shown(rec.judgement.reason), ""});
            rows.push_back(std::move(row));
        }
        std::cout << format_table(rows, colour_wanted());
    }
    std::cout.flush();
    int code = std::cout ? k_exit_ok : k_exit_io;
    const bool any_unknown =
        std::any_of(report.locks.begin(), report.locks.end(),
                    [](const LockRecord& r) { return r.judgement.verdict == Verdict::unknown; });
    for (const auto& server : report.tmux_servers) {
        if (server.facts.state == TmuxState::unknown && any_unknown) {
            std::cerr << "agentlock: tmux server " << describe_tmux_server(server.server)
                      << " state unknown (" << shown(server.facts.detail)
                      << "): locks that record a session are judged unknown and kept\n";
        }
    }
    for (const auto& root : report.roots) {
        if (!root.ok) {
            std::cerr << "agentlock: root " << shown(root.path) << ": " << shown(root.error)
                      << "\n";
            code = k_exit_io;
        }
    }
    for (const auto& e : report.walk_errors) {
        std::cerr << "agentlock: " << shown(e.path) << ": " << shown(e.message) << "\n";
    }
    return code;
}

int why_main(const Args& args) {
    auto worker = single_worker(args, "why");
    if (!worker) {
        return worker.exit_code();
    }
    // The worker is the root of a one-worker pass, judged as the daemon judges it (dry run).
    auto config = list_config(args, {*worker});
    if (!config) {
        return fail(config.error().kind == ErrorKind::io ? k_exit_io : k_exit_config,
                    config.error().message);
    }
    PassOptions options = pass_options_of(*config);
    options.dry_run = true;
    SystemProcessProbe processes;
    SystemTmuxProbes tmux(config->tmux_timeout);
    const HostFacts host = read_host_facts();
    const WorkerCheck check = check_worker(config->roots.front(), options, processes, tmux, host);
    const std::string name = shown(check.worker);
    switch (check.state) {
    case WorkerCheck::State::absent:
        std::cout << name << ": unlocked (no " << shown(check.lock_path) << ")\n";
        return k_exit_ok;
    case WorkerCheck::State::outside:
    case WorkerCheck::State::unreachable:
        return fail(k_exit_io, check.error);
    case WorkerCheck::State::found:
        break;
    }
    const LockRecord& rec = check.record;
    auto line = [](std::string_view topic, const std::string& text) {
        std::cout << "  " << topic << std::string(9 - topic.size(), ' ') << shown(text) << "\n";
    };
    std::cout << name << ": " << to_string(rec.judgement.verdict) << "\n";
    line("lock", rec.lock_path);
    if (rec.info) {
        line("owner", describe_holder(*rec.info));
        for (const auto& step : explain_lock(*rec.info, rec.process, check.tmux,
                                             describe_tmux_server(check.tmux_server), host)) {
            line(step.topic, step.finding);
        }
    }
    line("verdict", std::string(to_string(rec.judgement.verdict)) + ": " + rec.judgement.reason);
    line("daemon", rec.action == LockAction::would_remove
                       ? "would remove it (only a stale lock is ever removed)"
                       : "would keep it");
    return k_exit_ok;
}

int version_main(const Args&) {
    std::cout << "agentlock " AGENTLOCK_VERSION "\n";
    return k_exit_ok;
}

int help_main(const Args& args);

const std::vector<Command>& commands() {
    static const std::vector<Command> k_commands = {
        {"run",
         R"--(Usage: agentlock run [--session S] [--wait DUR | --no-wait] WORKER -- CMD [ARG...]

Takes WORKER's lock for CMD, runs CMD, and releases the lock when CMD ends. The lock names
CMD's own pid, so it stays live while CMD runs even if agentlock itself is killed. CMD starts
only once its lock is written. SIGTERM, SIGINT and SIGHUP sent to agentlock are forwarded to
CMD (a Ctrl-C or hang-up from the terminal already reaches CMD and is not sent twice).
Exits with CMD's status (128+N when signal N ended it).

Options:
  --session S            the session recorded in the lock (default: $TMUX_PANE, else none)
  --wait DUR             when another live agent holds the lock, retry until DUR has
                         passed (500ms, 30s, 5m, 1h; at most 168h)
  --no-wait              fail at once with 75 when the lock is held (the default)
)--",
         with_server({{"--session", true}, {"--wait", true}, {"--no-wait", false}}), run_main, 0},
        {"acquire",
         R"--(Usage: agentlock acquire [--session S] [--pid P] WORKER

Takes WORKER's lock for process P, as an agent's own library call would: refreshes a lock P
or session S already holds, takes over a stale one, and fails with 75 naming the holder
when another live agent holds it.

Options:
  --session S            the session recorded in the lock (default: $TMUX_PANE, else none)
  --pid P                the process the lock names (default: agentlock's parent, e.g. the
                         shell that ran it); it must be running
)--",
         with_server({{"--session", true}, {"--pid", true}}), acquire_main, std::nullopt},
        {"release",
         R"--(Usage: agentlock release [--pid P] WORKER

Removes WORKER's lock if process P holds it; no lock is fine. Refuses, with exit code 77,
to remove a lock another owner holds.

Options:
  --pid P                the owner (default: agentlock's parent, e.g. the calling shell)
)--",
         with_server({{"--pid", true}}), release_main, std::nullopt},
        {"check",
         R"--(Usage: agentlock check WORKER

Exits 0 when WORKER is free: no lock, the caller's own lock, or a stale lock (which is then
removed, as the daemon would). Exits 75, naming the holder, when another live agent holds it
or its liveness cannot be established.

Options:
)--",
         with_server({}), check_main, std::nullopt},
        {"status",
         R"--(Usage: agentlock status [--json] WORKER

Prints WORKER's status line: "unlocked", "locked (by us)", "stale (dead PID n)",
"locked by PID n (session: s)" or "error: ...". With --json, an object with worker,
lock_path, status and the lock's pid, session_id, hostname and acquired_at.

Options:
  --json                 print JSON
)--",
         with_server({{"--json", false}}), status_main, std::nullopt},
        {"force-release",
         R"--(Usage: agentlock force-release [--even-if-live] WORKER

Removes WORKER's lock whoever holds it, for repairs: a lock left by another host, an invalid
lock, a stale one. Says whose lock it removed and prints its content on stdout. A lock that
may belong to a running agent (live, orphaned, held-by-session, unknown) is kept, with exit
code 75, unless --even-if-live is given.

Options:
  --even-if-live         remove the lock even when its agent may be running
)--",
         with_server({{"--even-if-live", false}}), force_release_main, std::nullopt},
        {"list",
         R"--(Usage: agentlock list [--json] [ROOT...]

Lists every lock under the ROOTs with its verdict, pid, session, host, age and reason, judged
exactly as agentlockd judges it; never removes anything. Without ROOT, the roots (and tmux
server, prune list, depth) come from the config file. On a terminal the table is coloured
(unless NO_COLOR is set). --json prints the document 'agentlockd --once --json --dry-run'
prints. Exits 74 when a root could not be walked.

Options:
  --json                 print JSON
)--",
         with_server({{"--json", false}}), list_main, std::nullopt},
        {"why",
         R"--(Usage: agentlock why WORKER

Gives the verdict on WORKER's lock, as agentlockd judges it, and its evidence step by step:
the pid's state, its start time against acquired_at, the tmux server and session, the host,
the boot. Removes nothing.

Options:
)--",
         with_server({}), why_main, std::nullopt},
        {"version",
         "Usage: agentlock version\n\nPrints agentlock's version.\n",
         {},
         version_main,
         std::nullopt},
        {"help",
         "Usage: agentlock help [COMMAND]\n\nPrints the usage of agentlock or COMMAND.\n",
         {},
         help_main,
         std::nullopt},
    };
    return k_commands;
}

const Command* find_command(std::string_view name) {
    for (const auto& c : commands()) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

void print_help(const Command& c) {
    std::cout << c.help;
    if (!c.flags.empty() && c.flags.back().name == "--tmux-socket-path") {
        std::cout << k_server_help;
    }
    std::cout << "  -h, --help             this text\n\n" << k_exit_codes;
}

int help_main(const Args& args) {
    if (args.operands.empty()) {
        std::cout << usage_text();
        return k_exit_ok;
    }
    const Command* c = find_command(args.operands[0]);
    if (c == nullptr) {
        return fail(k_exit_usage, "unknown command " + args.operands[0] + " (try agentlock help)");
    }
    print_help(*c);
    return k_exit_ok;
}

// The command line `argv` (without the program name) carried out; returns the exit code.
int dispatch(const std::vector<std::string>& argv) {
    if (argv.empty() || argv[0] == "-h" || argv[0] == "--help") {
        std::cout << usage_text();
        return argv.empty() ? k_exit_usage : k_exit_ok;
    }
    if (argv[0] == "--version") {
        return version_main({});
    }
    const Command* c = find_command(argv[0]);
    if (c == nullptr) {
        return fail(k_exit_usage, "unknown command " + argv[0] + " (try agentlock --help)");
    }
    const std::vector<std::string> rest(argv.begin() + 1, argv.end());
    auto args = parse_args(rest, c->flags, c->command_after);
    if (!args) {
        return fail(k_exit_usage,
                    args.error().message + " (try agentlock " + std::string(c->name) + " --help)");
    }
    if (args->help) {
        print_help(*c);
        return k_exit_ok;
    }
    return c->main(*args);
}

} // namespace

} // namespace agentlock::cli

int main(int argc, char** argv) {
    // A closed stdout must be reported as an error, not end us silently.
    (void)std::signal(SIGPIPE, SIG_IGN);
    // Nothing is meant to throw this far (failures are Results); should something (an
    // allocation) throw all the same, it is reported as a failure of ours rather than left to
    // std::terminate.
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        return agentlock::cli::dispatch(args);
    } catch (const std::exception& e) {
        return agentlock::cli::fail(agentlock::cli::k_exit_software, e.what());
    } catch (...) {
        return agentlock::cli::fail(agentlock::cli::k_exit_software, "unknown exception");
    }
}
