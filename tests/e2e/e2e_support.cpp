#include "e2e_support.hpp"

#include "test_support.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <iostream>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace agentlock::e2e {

namespace {

std::runtime_error sys_error(const std::string& operation, const std::string& path, int saved) {
    return std::runtime_error(operation + " " + path + ": " + std::strerror(saved));
}

// Reads a whole file; empty when it does not exist yet.
std::string slurp(const std::string& path, std::size_t offset = 0) {
    std::string text;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return text;
    }
    if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
        ::close(fd);
        return text;
    }
    char buf[8192];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

// Variables the daemon must not inherit from whatever runs the tests.
bool is_scrubbed(std::string_view entry) {
    for (std::string_view key :
         {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "JOURNAL_STREAM=", "LISTEN_FDS=",
          "LISTEN_PID=", "LISTEN_FDNAMES="}) {
        if (entry.substr(0, key.size()) == key) {
            return true;
        }
    }
    return false;
}

std::atomic<int> g_daemon_counter{0};

// Closes an fd on scope exit.
struct FdGuard {
    explicit FdGuard(int f) : fd(f) {}
    ~FdGuard() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    FdGuard(const FdGuard&) = delete;
    FdGuard& operator=(const FdGuard&) = delete;
    int fd;
};

} // namespace

std::string daemon_path() {
    const char* p = std::getenv("AGENTLOCKD");
    if (p == nullptr || *p == '\0') {
        throw std::runtime_error("AGENTLOCKD is not set: run through ctest or set it to the "
                                 "agentlockd binary");
    }
    return p;
}

std::string rfc3339_now(std::chrono::seconds offset) {
    return test::now_rfc3339(offset);
}

const boost::json::value* member(const boost::json::object& o, std::string_view key) {
    auto it = o.find(key);
    return it == o.end() ? nullptr : &it->value();
}

std::string str_or(const boost::json::object& o, std::string_view key, std::string fallback) {
    const boost::json::value* v = member(o, key);
    return (v != nullptr && v->is_string()) ? std::string(v->as_string()) : fallback;
}

std::optional<long long> int_of(const boost::json::object& o, std::string_view key) {
    const boost::json::value* v = member(o, key);
    if (v != nullptr && v->is_int64()) {
        return v->as_int64();
    }
    if (v != nullptr && v->is_uint64()) {
        return static_cast<long long>(v->as_uint64());
    }
    return std::nullopt;
}

std::optional<boost::json::object> lock_entry(const boost::json::object& doc,
                                              const std::string& path) {
    const boost::json::value* locks = member(doc, "locks");
    if (locks == nullptr || !locks->is_array()) {
        return std::nullopt;
    }
    for (const auto& l : locks->as_array()) {
        if (l.is_object() && str_or(l.as_object(), "lock_path") == path) {
            return l.as_object();
        }
    }
    return std::nullopt;
}

std::string real_path(const std::string& path) {
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf) == nullptr) {
        throw sys_error("realpath", path, errno);
    }
    return buf;
}

namespace {

// A stream socket bound at `path`.
int bound_stream_socket(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        throw std::runtime_error("socket path too long: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw sys_error("socket", path, errno);
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
        int saved = errno;
        ::close(fd);
        throw sys_error("bind", path, saved);
    }
    return fd;
}

} // namespace

HangingListener::HangingListener(std::string path) : m_path(std::move(path)) {
    m_fd = bound_stream_socket(m_path);
    if (::listen(m_fd, 64) < 0) {
        int saved = errno;
        ::close(m_fd);
        throw sys_error("listen", m_path, saved);
    }
}

HangingListener::~HangingListener() {
    ::close(m_fd);
    ::unlink(m_path.c_str());
}

void make_dead_socket(const std::string& path) {
    int fd = bound_stream_socket(path);
    if (::close(fd) < 0) {
        throw sys_error("close", path, errno);
    }
}

std::optional<boost::json::value> parse_json(std::string_view text, std::string* error) {
    boost::json::error_code ec;
    boost::json::value v = boost::json::parse(text, ec);
    if (ec) {
        if (error != nullptr) {
            *error = ec.message();
        }
        return std::nullopt;
    }
    return v;
}

// ---------------------------------------------------------------------------------------------
// NotifyReceiver

bool NotifyMessage::has(const std::string& key, std::optional<std::string> value) const {
    auto it = fields.find(key);
    if (it == fields.end()) {
        return false;
    }
    return !value || it->second == *value;
}

NotifyReceiver::NotifyReceiver(std::string path) : m_path(std::move(path)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (m_path.size() >= sizeof addr.sun_path) {
        throw std::runtime_error("notify socket path too long: " + m_path);
    }
    std::memcpy(addr.sun_path, m_path.c_str(), m_path.size() + 1);
    m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) {
        throw sys_error("socket", m_path, errno);
    }
    if (::bind(m_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
        int saved = errno;
        ::close(m_fd);
        throw sys_error("bind", m_path, saved);
    }
    if (::pipe2(m_stop_pipe, O_CLOEXEC) < 0) {
        int saved = errno;
        ::close(m_fd);
        throw sys_error("pipe2", m_path, saved);
    }
    m_thread = std::thread([this] { receive_loop(); });
}

NotifyReceiver::~NotifyReceiver() {
    char c = 'x';
    while (::write(m_stop_pipe[1], &c, 1) < 0 && errno == EINTR) {
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
    ::close(m_stop_pipe[0]);
    ::close(m_stop_pipe[1]);
    ::close(m_fd);
    ::unlink(m_path.c_str());
}

void NotifyReceiver::receive_loop() {
    std::vector<char> buf(64 * 1024);
    while (true) {
        pollfd fds[2] = {{m_fd, POLLIN, 0}, {m_stop_pipe[0], POLLIN, 0}};
        int n = ::poll(fds, 2, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if ((fds[1].revents & POLLIN) != 0) {
            return;
        }
        if ((fds[0].revents & POLLIN) == 0) {
            continue;
        }
        ssize_t got = ::recvfrom(m_fd, buf.data(), buf.size(), MSG_DONTWAIT, nullptr, nullptr);
        if (got < 0) {
            continue;
        }
        NotifyMessage msg;
        msg.raw.assign(buf.data(), static_cast<std::size_t>(got));
        std::size_t start = 0;
        while (start < msg.raw.size()) {
            std::size_t end = msg.raw.find('\n', start);
            if (end == std::string::npos) {
                end = msg.raw.size();
            }
            std::string line = msg.raw.substr(start, end - start);
            auto eq = line.find('=');
            if (eq != std::string::npos) {
                msg.fields[line.substr(0, eq)] = line.substr(eq + 1);
            } else if (!line.empty()) {
                msg.fields[line] = "";
            }
            start = end + 1;
        }
        std::lock_guard lock(m_mutex);
        m_messages.push_back(std::move(msg));
    }
}

std::vector<NotifyMessage> NotifyReceiver::messages() const {
    std::lock_guard lock(m_mutex);
    return m_messages;
}

std::size_t NotifyReceiver::count() const {
    std::lock_guard lock(m_mutex);
    return m_messages.size();
}

std::optional<std::size_t>
NotifyReceiver::wait_for(const std::function<bool(const NotifyMessage&)>& pred, std::size_t from,
                         std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        {
            std::lock_guard lock(m_mutex);
            for (std::size_t i = from; i < m_messages.size(); ++i) {
                if (pred(m_messages[i])) {
                    return i;
                }
            }
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::optional<std::size_t> NotifyReceiver::wait_for_key(const std::string& key,
                                                        std::optional<std::string> value,
                                                        std::size_t from,
                                                        std::chrono::milliseconds timeout) const {
    return wait_for([&](const NotifyMessage& m) { return m.has(key, value); }, from, timeout);
}

std::size_t NotifyReceiver::count_key(const std::string& key, std::optional<std::string> value,
                                      std::size_t from) const {
    std::lock_guard lock(m_mutex);
    std::size_t n = 0;
    for (std::size_t i = from; i < m_messages.size(); ++i) {
        if (m_messages[i].has(key, value)) {
            ++n;
        }
    }
    return n;
}

// ---------------------------------------------------------------------------------------------
// LogEvent, ExitStatus

std::string LogEvent::name() const {
    return str("event").value_or("");
}

std::optional<std::string> LogEvent::str(std::string_view key) const {
    auto it = fields.find(key);
    if (it == fields.end() || !it->value().is_string()) {
        return std::nullopt;
    }
    return std::string(it->value().as_string());
}

std::string LogEvent::dump() const {
    return boost::json::serialize(fields);
}

std::string ExitStatus::describe() const {
    return exited ? "exit " + std::to_string(code) : "signal " + std::to_string(signal);
}

// ---------------------------------------------------------------------------------------------
// DaemonProcess

DaemonProcess::DaemonProcess(const std::string& dir, const DaemonSpec& spec) {
    int n = g_daemon_counter++;
    m_out_path = dir + "/daemon-" + std::to_string(n) + ".out";
    m_err_path = dir + "/daemon-" + std::to_string(n) + ".err";
    std::string binary = daemon_path();

    FdGuard out_fd(::open(m_out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out_fd.fd < 0) {
        throw sys_error("open", m_out_path, errno);
    }
    FdGuard err_fd(::open(m_err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (err_fd.fd < 0) {
        throw sys_error("open", m_err_path, errno);
    }
    FdGuard null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_fd.fd < 0) {
        throw sys_error("open", "/dev/null", errno);
    }

    // Everything the child needs is built before fork: only async-signal-safe calls after it.
    std::vector<std::string> argv_s = spec.launcher;
    argv_s.push_back(binary);
    argv_s.insert(argv_s.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);

    std::vector<std::string> env_s;
    // An extra entry replaces an inherited one of the same name (getenv would find the first).
    const auto overridden = [&spec](std::string_view entry) {
        const std::size_t eq = entry.find('=');
        const std::string_view name = entry.substr(0, eq == std::string_view::npos ? 0 : eq + 1);
        return !name.empty() &&
               std::any_of(spec.extra_env.begin(), spec.extra_env.end(),
                           [name](const std::string& extra) {
                               return std::string_view(extra).substr(0, name.size()) == name;
                           });
    };
    for (char** e = environ; *e != nullptr; ++e) {
        if (!is_scrubbed(*e) && !overridden(*e)) {
            env_s.emplace_back(*e);
        }
    }
    if (!spec.notify_socket.empty()) {
        env_s.push_back("NOTIFY_SOCKET=" + spec.notify_socket);
    }
    if (spec.watchdog_usec) {
        env_s.push_back("WATCHDOG_USEC=" + std::to_string(*spec.watchdog_usec));
    }
    env_s.insert(env_s.end(), spec.extra_env.begin(), spec.extra_env.end());
    if (spec.journal_stream_is_stderr) {
        struct stat st {};
        if (::fstat(err_fd.fd, &st) < 0) {
            throw sys_error("fstat", m_err_path, errno);
        }
        env_s.push_back("JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" +
                        std::to_string(st.st_ino));
    }
    std::vector<char*> envp;
    for (auto& e : env_s) {
        envp.push_back(e.data());
    }
    // WATCHDOG_PID must be the daemon's own PID, known only in the child: filled in there.
    char watchdog_pid[64] = "WATCHDOG_PID=";
    constexpr std::size_t k_prefix = sizeof("WATCHDOG_PID=") - 1;
    if (spec.watchdog_usec) {
        envp.push_back(watchdog_pid);
    }
    envp.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) {
        throw sys_error("fork", binary, errno);
    }
    if (pid == 0) {
        if (spec.watchdog_usec) {
            char digits[24];
            std::size_t len = 0;
            for (auto v = static_cast<unsigned long>(::getpid()); v > 0; v /= 10) {
                digits[len++] = static_cast<char>('0' + v % 10);
            }
            for (std::size_t i = 0; i < len; ++i) {
                watchdog_pid[k_prefix + i] = digits[len - 1 - i];
            }
            watchdog_pid[k_prefix + len] = '\0';
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        if (::dup2(null_fd.fd, 0) < 0 || ::dup2(out_fd.fd, 1) < 0 || ::dup2(err_fd.fd, 2) < 0) {
            ::_exit(126);
        }
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    m_pid = pid;
}

DaemonProcess::~DaemonProcess() {
    kill_now();
}

bool DaemonProcess::running() {
    if (m_status) {
        return false;
    }
    int st = 0;
    pid_t r = ::waitpid(m_pid, &st, WNOHANG);
    if (r == m_pid) {
        ExitStatus s;
        s.exited = WIFEXITED(st);
        s.code = s.exited ? WEXITSTATUS(st) : -1;
        s.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        m_status = s;
        return false;
    }
    return true;
}

void DaemonProcess::send_signal(int sig) {
    if (!running()) {
        throw std::runtime_error("agentlockd already exited (" + m_status->describe() +
                                 "); cannot send signal " + std::to_string(sig));
    }
    if (::kill(m_pid, sig) < 0) {
        throw sys_error("kill", std::to_string(m_pid), errno);
    }
}

std::optional<ExitStatus> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return m_status;
}

void DaemonProcess::kill_now() {
    if (m_pid > 0 && running()) {
        ::kill(m_pid, SIGKILL);
        int st = 0;
        while (::waitpid(m_pid, &st, 0) < 0 && errno == EINTR) {
        }
        m_status = ExitStatus{false, -1, SIGKILL};
    }
}

std::string DaemonProcess::stdout_text() const {
    return slurp(m_out_path);
}

std::string DaemonProcess::stderr_text() const {
    return slurp(m_err_path);
}

void DaemonProcess::read_new_output() {
    std::string fresh = slurp(m_err_path, m_err_offset);
    m_err_offset += fresh.size();
    m_partial += fresh;
    std::size_t start = 0;
    while (true) {
        std::size_t end = m_partial.find('\n', start);
        if (end == std::string::npos) {
            break;
        }
        std::string line = m_partial.substr(start, end - start);
        start = end + 1;
        m_lines.push_back(line);
        boost::json::error_code ec;
        boost::json::value v = boost::json::parse(line, ec);
        if (!ec && v.is_object()) {
            m_events.push_back(LogEvent{m_events.size(), std::move(v.as_object())});
        }
    }
    m_partial.erase(0, start);
}

std::vector<std::string> DaemonProcess::log_lines() {
    read_new_output();
    return m_lines;
}

std::vector<LogEvent> DaemonProcess::events() {
    read_new_output();
    return m_events;
}

std::size_t DaemonProcess::event_count() {
    read_new_output();
    return m_events.size();
}

std::vector<LogEvent> DaemonProcess::find_events(std::string_view name,
                                                 const std::function<bool(const LogEvent&)>& pred,
                                                 std::size_t from) {
    read_new_output();
    std::vector<LogEvent> found;
    for (std::size_t i = from; i < m_events.size(); ++i) {
        if (m_events[i].name() == name && (!pred || pred(m_events[i]))) {
            found.push_back(m_events[i]);
        }
    }
    return found;
}

std::optional<LogEvent>
DaemonProcess::wait_for_event(std::string_view name,
                              const std::function<bool(const LogEvent&)>& pred, std::size_t from,
                              std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        // Checked before reading, so that an exited daemon's last lines are still seen.
        bool alive = running();
        auto found = find_events(name, pred, from);
        if (!found.empty()) {
            return found.front();
        }
        if (!alive || std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::optional<LogEvent> DaemonProcess::wait_for_nth_event(std::string_view name, std::size_t n,
                                                          std::size_t from,
                                                          std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        bool alive = running();
        auto found = find_events(name, nullptr, from);
        if (n > 0 && found.size() >= n) {
            return found[n - 1];
        }
        if (!alive || std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::string DaemonProcess::tail(std::size_t max_chars) const {
    auto cut = [max_chars](std::string s) {
        return s.size() > max_chars ? "..." + s.substr(s.size() - max_chars) : s;
    };
    return "--- agentlockd stderr ---\n" + cut(stderr_text()) + "\n--- agentlockd stdout ---\n" +
           cut(stdout_text());
}

std::function<bool(const LogEvent&)> about_lock(const std::string& path) {
    return [path](const LogEvent& ev) { return ev.str("lock_path") == path; };
}

void tear_down_daemon(std::unique_ptr<DaemonProcess>& daemon, bool test_failed,
                      std::size_t tail_chars) {
    if (daemon) {
        daemon->kill_now();
        if (test_failed) {
            std::cerr << daemon->tail(tail_chars) << "\n";
        }
    }
    daemon.reset();
}

std::string WorkerRoot::worker(const std::string& name) const {
    return m_root + "/" + name;
}

std::string WorkerRoot::runtime(const std::string& name) const {
    return worker(name) + "/.runtime";
}

std::string WorkerRoot::lock_path(const std::string& name) const {
    return runtime(name) + "/agent.lock";
}

std::string WorkerRoot::put_lock(const std::string& name, const std::string& content) const {
    std::string p = lock_path(name);
    test::write_file(p, content);
    return p;
}

std::string WorkerRoot::put_stale(const std::string& name, const std::string& session) const {
    return put_lock(name, stale_json(session));
}

std::string WorkerRoot::put_live(const std::string& name, const test::Child& owner,
                                 const std::string& session) const {
    return put_lock(
        name, test::go_lock_json(owner.pid(), rfc3339_now(), session, test::local_hostname()));
}

std::string WorkerRoot::stale_json(const std::string& session) {
    return test::go_lock_json(test::dead_pid(), rfc3339_now(-std::chrono::seconds(5)), session,
                              test::local_hostname());
}

RunResult run_daemon(const std::string& dir, const std::vector<std::string>& args,
                     std::chrono::milliseconds timeout) {
    DaemonSpec spec;
    spec.args = args;
    DaemonProcess d(dir, spec);
    RunResult r;
    auto st = d.wait_exit(timeout);
    if (!st) {
        r.timed_out = true;
        d.kill_now();
        st = d.wait_exit(std::chrono::seconds(1));
    }
    if (st) {
        r.status = *st;
    }
    r.out = d.stdout_text();
    r.err = d.stderr_text();
    return r;
}

} // namespace agentlock::e2e
