#include <agentlock/lock.hpp>

#include <agentlock/fd.hpp>
#include <agentlock/reaper.hpp>
#include <agentlock/verdict.hpp>

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock {

struct Lock::Probes {
    explicit Probes(const LockOptions& options) : tmux(options.tmux), host(read_host_facts()) {}
    SystemProcessProbe process;
    SystemTmuxProbe tmux;
    HostFacts host;
};

namespace {

Error make_error(ErrorKind kind, std::string path, std::string message) {
    Error e;
    e.kind = kind;
    e.path = std::move(path);
    e.message = std::move(message);
    return e;
}

// RFC 3339 to the second, as the seed's error messages print acquired_at.
std::string seconds_text(Timestamp t) {
    return format_rfc3339(std::chrono::floor<std::chrono::seconds>(t)).substr(0, 19) + "Z";
}

std::string session_text(const LockInfo& info) {
    return info.session_id;
}

Error locked_error(const std::string& path, const LockInfo& info, const Judgement& judgement,
                   bool with_time) {
    std::string msg = "worker is locked by another agent: PID " + std::to_string(info.pid) +
                      " (session: " + session_text(info);
    if (with_time) {
        msg += ", acquired: " + seconds_text(info.acquired_at);
    }
    msg += ")";
    if (judgement.verdict != Verdict::live) {
        msg += " [" + std::string(to_string(judgement.verdict)) + ": " + judgement.reason + "]";
    }
    return make_error(ErrorKind::locked, path, std::move(msg));
}

Error read_error(const LockRead& r, const std::string& path) {
    if (r.state == LockRead::State::invalid) {
        return make_error(ErrorKind::invalid_lock, path, "invalid lock file: " + r.message);
    }
    Error e = make_error(ErrorKind::io, path, r.message);
    return e;
}

} // namespace

Lock::Lock(std::string worker_dir, LockOptions options)
    : m_worker_dir(std::move(worker_dir)), m_lock_path(lock_path_for(m_worker_dir)),
      m_options(std::move(options)) {}
Lock::~Lock() = default;
Lock::Lock(Lock&&) noexcept = default;
Lock& Lock::operator=(Lock&&) noexcept = default;

namespace {

// Opens <worker>/.runtime without following a symlinked .runtime; creates it when asked.
Result<Fd> open_runtime_dir(const std::string& worker_dir, bool create) {
    if (create) {
        // Like the seed's MkdirAll: the agent may claim a worker directory that is new.
        std::error_code ec;
        std::filesystem::create_directories(worker_dir, ec);
        if (ec) {
            return io_error("mkdir", worker_dir, ec.value());
        }
    }
    Fd worker(::open(worker_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!worker) {
        return io_error("open", worker_dir, errno);
    }
    const std::string runtime_path = worker_dir + "/" + std::string(k_runtime_dir);
    const std::string runtime_name(k_runtime_dir);
    for (int attempt = 0; attempt < 2; ++attempt) {
        Fd rt(::openat(worker.get(), runtime_name.c_str(),
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (rt) {
            return rt;
        }
        const int err = errno;
        if (err != ENOENT || !create) {
            return io_error("open", runtime_path, err);
        }
        if (::mkdirat(worker.get(), runtime_name.c_str(), 0755) != 0 && errno != EEXIST) {
            return io_error("mkdir", runtime_path, errno);
        }
    }
    return io_error("open", runtime_path, ENOENT);
}

// Takes the sidecar flock that Go and C++ agents serialise on (blocking).
Result<Fd> take_flock(int runtime_fd, const std::string& lock_path) {
    const std::string name(k_flock_name);
    const std::string path = lock_path + ".flock";
    Fd fd(::openat(runtime_fd, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) {
        return io_error("open", path, errno);
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            return io_error("flock", path, errno);
        }
    }
    return fd;
}

// The .runtime directory with the sidecar flock held. `runtime` is invalid (and nothing is held)
// when .runtime does not exist and `create` is false.
struct HeldRuntime {
    Fd runtime;
    Fd guard;
};

Result<HeldRuntime> hold_runtime(const std::string& worker_dir, const std::string& lock_path,
                                 bool create) {
    auto rt = open_runtime_dir(worker_dir, create);
    if (!rt) {
        if (!create && rt.error().code == std::errc::no_such_file_or_directory) {
            return HeldRuntime{};
        }
        return rt.error();
    }
    auto guard = take_flock(rt->get(), lock_path);
    if (!guard) {
        return guard.error();
    }
    return HeldRuntime{std::move(*rt), std::move(*guard)};
}

Status unlink_lock(int runtime_fd, const std::string& lock_path) {
    const std::string name(k_lock_name);
    if (::unlinkat(runtime_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
        return io_error("unlink", lock_path, errno);
    }
    return {};
}

} // namespace

Judgement Lock::judge(const LockInfo& info) {
    ProcessProbe& processes = m_options.process_probe != nullptr
                                  ? *m_options.process_probe
                                  : static_cast<ProcessProbe&>(probes().process);
    TmuxProbe& tmux = m_options.tmux_probe != nullptr ? *m_options.tmux_probe
                                                      : static_cast<TmuxProbe&>(probes().tmux);
    TmuxFacts facts;
    facts.detail = "not queried: the lock records no session";
    TmuxEvidence evidence;
    if (!info.session_id.empty()) {
        if (info.tmux_socket && m_options.tmux_probe == nullptr) {
            // The agent's own server, which the lock names, rather than the one configured here.
            facts = SystemTmuxProbe(TmuxServer{"", *info.tmux_socket}).query();
        } else {
            facts = tmux.query();
        }
        if (info.tmux_server_pid) {
            evidence.recorded_server = processes.probe(*info.tmux_server_pid);
        }
    }
    const ProcessFacts process = processes.probe(info.pid);
    ReuseFacts reuse;
    if (needs_pid_table(info, process) || needs_boot_time(info, host())) {
        reuse.pid_table = processes.pid_table(); // after the probe, as the rule needs
    }
    return judge_lock(info, process, facts, host(), reuse, evidence);
}

Lock::Probes& Lock::probes() {
    if (!m_probes) {
        m_probes = std::make_unique<Probes>(m_options);
    }
    return *m_probes;
}

const HostFacts& Lock::host() {
    return probes().host;
}

std::int64_t Lock::owner_pid() const {
    return m_options.owner_pid != 0 ? m_options.owner_pid : static_cast<std::int64_t>(::getpid());
}

bool Lock::is_ours(const LockInfo& info) {
    return info.pid == owner_pid() && (info.hostname.empty() || info.hostname == host().hostname);
}

Status Lock::write_ours(int runtime_fd, std::string_view session_id) {
    LockInfo info;
    info.pid = owner_pid();
    info.acquired_at =
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
    info.session_id = std::string(session_id);
    info.hostname = host().hostname;
    if (m_options.owner_pid == 0 || m_options.owner_pid == ::getpid()) {
        info.pid_start_ticks = own_start_ticks();
    } else {
        // Another process's lock must record its start time, or a reused PID would keep it.
        ProcessProbe& processes = m_options.process_probe != nullptr
                                      ? *m_options.process_probe
                                      : static_cast<ProcessProbe&>(probes().process);
        const ProcessFacts owner = processes.probe(info.pid);
        if (owner.state != ProcessState::alive) {
            return make_error(ErrorKind::invalid, m_lock_path,
                              "cannot lock " + m_lock_path + " for PID " +
                                  std::to_string(info.pid) + ": it is not running");
        }
        info.pid_start_ticks = owner.start_ticks;
    }
    if (!host().boot_id.empty()) {
        info.boot_id = host().boot_id;
    }
    // The agent's tmux server, so that a judge asks that server about the session rather than
    // one configured for the whole fleet, and knows its ids once that server is gone.
    const char* tmux_env = m_options.tmux_env ? m_options.tmux_env->c_str() : std::getenv("TMUX");
    if (tmux_env != nullptr) {
        if (std::optional<TmuxEnv> server = parse_tmux_env(tmux_env)) {
            info.tmux_socket = server->socket_path;
            info.tmux_server_pid = server->server_pid;
        }
    }
    return write_lock_at(runtime_fd, m_lock_path, info);
}

Status Lock::acquire(std::string_view session_id) {
    auto held = hold_runtime(m_worker_dir, m_lock_path, true);
    if (!held) {
        return held.error();
    }
    const Fd& rt = held->runtime;
    const LockRead current = read_lock_at(rt.get(), m_lock_path);
    switch (current.state) {
    case LockRead::State::absent:
        return write_ours(rt.get(), session_id);
    case LockRead::State::invalid:
    case LockRead::State::io_error:
        // An unparseable lock may be mid-write by a writer that does not rename: never take it.
        return read_error(current, m_lock_path);
    case LockRead::State::ok:
        break;
    }
    const LockInfo& info = *current.info;
    const bool same_host = info.hostname.empty() || info.hostname == host().hostname;
    if (is_ours(info)) {
        return write_ours(rt.get(), session_id);
    }
    if (same_host && !session_id.empty() && info.session_id == session_id) {
        // The same session re-claiming its identity (the writer is often a short-lived launcher).
        return write_ours(rt.get(), session_id);
    }
    const Judgement judgement = judge(info);
    if (is_removable(judgement.verdict)) {
        return write_ours(rt.get(), session_id);
    }
    return locked_error(m_lock_path, info, judgement, true);
}

Status Lock::release() {
    auto held = hold_runtime(m_worker_dir, m_lock_path, false);
    if (!held) {
        return held.error();
    }
    if (!held->runtime) {
        return {};
    }
    const Fd& rt = held->runtime;
    const LockRead current = read_lock_at(rt.get(), m_lock_path);
    if (current.state == LockRead::State::absent) {
        return {};
    }
    if (current.state != LockRead::State::ok) {
        return read_error(current, m_lock_path);
    }
    if (!is_ours(*current.info)) {
        return locked_error(m_lock_path, *current.info, {Verdict::live, ""}, true);
    }
    return unlink_lock(rt.get(), m_lock_path);
}

Result<LockInfo> Lock::read() const {
    auto rt = open_runtime_dir(m_worker_dir, false);
    if (!rt) {
        if (rt.error().code == std::errc::no_such_file_or_directory) {
            return make_error(ErrorKind::not_locked, m_lock_path, "worker is not locked");
        }
        return rt.error();
    }
    LockRead current = read_lock_at(rt->get(), m_lock_path);
    switch (current.state) {
    case LockRead::State::ok:
        return std::move(*current.info);
    case LockRead::State::absent:
        return make_error(ErrorKind::not_locked, m_lock_path, "worker is not locked");
    case LockRead::State::invalid:
    case LockRead::State::io_error:
        break;
    }
    return read_error(current, m_lock_path);
}

Status Lock::check() {
    // A stale lock that changes under us is judged again; three rounds bound the loop.
    for (int round = 0; round < 3; ++round) {
        auto rt = open_runtime_dir(m_worker_dir, false);
        if (!rt) {
            return rt.error().code == std::errc::no_such_file_or_directory ? Status() : rt.error();
        }
        const LockRead current = read_lock_at(rt->get(), m_lock_path);
        if (current.state == LockRead::State::absent) {
            return {};
        }
        if (current.state != LockRead::State::ok) {
            return read_error(current, m_lock_path);
        }
        const LockInfo& info = *current.info;
        if (is_ours(info)) {
            return {};
        }
        const Judgement judgement = judge(info);
        if (!is_removable(judgement.verdict)) {
            return locked_error(m_lock_path, info, judgement, false);
        }
        const RemovalResult removal = remove_if_unchanged(
            rt->get(), m_lock_path, current.bytes,
            [this](const LockInfo& again) { return judge(again); }, false);
        if (removal.action == RemovalAction::removed) {
            return {};
        }
        if (removal.action == RemovalAction::failed) {
            return make_error(ErrorKind::io, m_lock_path, removal.detail);
        }
    }
    return make_error(ErrorKind::locked, m_lock_path,
                      "worker is locked by another agent: the lock kept changing while checked");
}

std::string Lock::status() {
    auto info = read();
    if (!info) {
        if (info.error().kind == ErrorKind::not_locked) {
            return "unlocked";
        }
        return "error: " + info.error().message;
    }
    if (is_ours(*info)) {
        return "locked (by us)";
    }
    const Judgement judgement = judge(*info);
    if (is_removable(judgement.verdict)) {
        return "stale (dead PID " + std::to_string(info->pid) + ")";
    }
    return "locked by PID " + std::to_string(info->pid) + " (session: " + info->session_id + ")";
}

Status Lock::force_release() {
    auto held = hold_runtime(m_worker_dir, m_lock_path, false);
    if (!held) {
        return held.error();
    }
    if (!held->runtime) {
        return {};
    }
    return unlink_lock(held->runtime.get(), m_lock_path);
}

namespace {

// Whether a verdict leaves room for a running agent: its process runs here (live, orphaned),
// its tmux session does (held-by-session), or that could not be established (unknown).
bool may_belong_to_running_agent(Verdict verdict) {
    return verdict == Verdict::live || verdict == Verdict::orphaned ||
           verdict == Verdict::held_by_session || verdict == Verdict::unknown;
}

} // namespace

Result<ForcedRelease> Lock::force_release_judged(bool even_if_live) {
    auto held = hold_runtime(m_worker_dir, m_lock_path, false);
    if (!held) {
        return held.error();
    }
    ForcedRelease out;
    if (!held->runtime) {
        return out;
    }
    const Fd& rt = held->runtime;
    LockRead current = read_lock_at(rt.get(), m_lock_path);
    switch (current.state) {
    case LockRead::State::absent:
        return out;
    case LockRead::State::io_error:
        return read_error(current, m_lock_path);
    case LockRead::State::invalid:
        out.judgement = {Verdict::invalid, current.message};
        break;
    case LockRead::State::ok:
        out.info = std::move(current.info);
        out.judgement = judge(*out.info);
        if (may_belong_to_running_agent(out.judgement.verdict) && !even_if_live) {
            return make_error(ErrorKind::locked, m_lock_path,
                              m_lock_path + " may belong to a running agent: " +
                                  std::string(to_string(out.judgement.verdict)) + ": " +
                                  out.judgement.reason);
        }
        break;
    }
    // Writers change the lock only under the flock we hold, so these are the bytes removed.
    out.content = std::move(current.bytes);
    if (Status s = unlink_lock(rt.get(), m_lock_path); !s) {
        return s.error();
    }
    out.removed = true;
    return out;
}

} // namespace agentlock
