#include "dir_watch.hpp"

#include <agentlock/findings.hpp>

#include <boost/asio/buffer.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <unistd.h>

namespace agentlock::daemon {

namespace {

constexpr std::uint32_t k_dir_mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW |
                                     IN_EXCL_UNLINK;
constexpr std::uint32_t k_runtime_mask = k_dir_mask | IN_CLOSE_WRITE;
// Room for many records per read; the kernel never splits one.
constexpr std::size_t k_read_buffer = 64 * 1024;

} // namespace

std::string join_path(const std::string& parent, const std::string& name) {
    if (parent.empty() || parent.back() == '/') {
        return parent + name;
    }
    return parent + "/" + name;
}

std::string parent_path(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) {
        return {};
    }
    if (slash == 0) {
        return "/";
    }
    return path.substr(0, slash);
}

namespace {

const std::string k_runtime_suffix = "/.runtime";

std::string_view suffix_of(const WatchPath& p) {
    return p.runtime_suffix ? std::string_view(k_runtime_suffix) : std::string_view{};
}

} // namespace

WatchPath WatchPath::of(const std::string& path) {
    WatchPath p;
    if (path.size() > k_runtime_suffix.size() &&
        path.compare(path.size() - k_runtime_suffix.size(), k_runtime_suffix.size(),
                     k_runtime_suffix) == 0) {
        p.base = PathRef(std::string_view(path).substr(0, path.size() - k_runtime_suffix.size()));
        p.runtime_suffix = true;
    } else {
        p.base = PathRef(path);
    }
    return p;
}

std::string WatchPath::str() const {
    std::string out(base.view());
    out += suffix_of(*this);
    return out;
}

bool WatchPathLess::operator()(const WatchPath& a, const WatchPath& b) const {
    return compare_joined(a.base.view(), suffix_of(a), b.base.view(), suffix_of(b)) < 0;
}

bool WatchPathLess::operator()(const WatchPath& a, std::string_view b) const {
    return compare_joined(a.base.view(), suffix_of(a), b, {}) < 0;
}

bool WatchPathLess::operator()(std::string_view a, const WatchPath& b) const {
    return compare_joined(a, {}, b.base.view(), suffix_of(b)) < 0;
}

std::vector<RawInotifyEvent> parse_inotify_buffer(const char* data, std::size_t size) {
    std::vector<RawInotifyEvent> out;
    std::size_t off = 0;
    while (off + sizeof(inotify_event) <= size) {
        inotify_event header{};
        std::memcpy(&header, data + off, sizeof header);
        const std::size_t record = sizeof(inotify_event) + header.len;
        if (off + record > size) {
            break;
        }
        RawInotifyEvent ev;
        ev.wd = header.wd;
        ev.mask = header.mask;
        ev.cookie = header.cookie;
        if (header.len > 0) {
            const char* name = data + off + sizeof(inotify_event);
            ev.name.assign(name, ::strnlen(name, header.len)); // NUL-padded
        }
        out.push_back(std::move(ev));
        off += record;
    }
    return out;
}

DirWatcher::DirWatcher(boost::asio::io_context& io)
    : m_io(io), m_buffer(new char[k_read_buffer]), m_buffer_size(k_read_buffer) {}

DirWatcher::~DirWatcher() {
    close();
}

Status DirWatcher::open() {
    if (m_fd) {
        return {};
    }
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        Error e = io_error("inotify_init1", "", errno);
        e.message = std::string("inotify_init1: ") + std::strerror(e.code.value());
        return e;
    }
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_raw_fd = fd;
    }
    m_fd = std::make_unique<boost::asio::posix::stream_descriptor>(m_io, fd);
    return {};
}

AddWatch outcome_of(const Result<AddWatch>& added) {
    if (added) {
        return *added;
    }
    return added.error().code == std::errc::no_space_on_device ? AddWatch::exhausted
                                                               : AddWatch::failed;
}

void DirWatcher::start(OnEvents on_events) {
    m_on_events = std::move(on_events);
    read_more();
}

void DirWatcher::close() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_by_wd.clear();
        m_by_path.clear();
        m_raw_fd = -1;
    }
    if (m_fd) {
        // Closing the inotify descriptor removes every watch with it.
        boost::system::error_code ec;
        m_fd->cancel(ec);
        m_fd->close(ec);
        m_fd.reset();
    }
}

Result<AddWatch> DirWatcher::add(const std::string& path, WatchKind kind) {
    std::lock_guard<std::mutex> lock(m_mutex);
    return add_locked(path, kind);
}

Result<AddWatch> DirWatcher::add_locked(const std::string& path, WatchKind kind) {
    if (m_raw_fd < 0) {
        Error e = io_error("inotify_add_watch", path, EBADF);
        e.message = "inotify_add_watch " + path + ": inotify is not open";
        return e;
    }
    auto known = m_by_path.find(path);
    if (known != m_by_path.end() && known->second.kind == kind) {
        known->second.mark = m_mark;
        return AddWatch::present;
    }
    const std::uint32_t mask = kind == WatchKind::runtime ? k_runtime_mask : k_dir_mask;
    const int wd = ::inotify_add_watch(m_raw_fd, path.c_str(), mask);
    if (wd < 0) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR || err == ELOOP) {
            return AddWatch::gone;
        }
        return io_error("inotify_add_watch", path, err);
    }
    // The same directory under another path (a bind mount) shares one watch: the newest path
    // names it.
    auto old = m_by_wd.find(wd);
    if (old != m_by_wd.end() && old->second->first.str() != path) {
        m_by_path.erase(old->second);
        m_by_wd.erase(old);
    }
    auto it = m_by_path.insert_or_assign(WatchPath::of(path), Watch{wd, kind, m_mark}).first;
    m_by_wd[wd] = it;
    return AddWatch::added;
}

void DirWatcher::remove_locked(const std::string& path) {
    auto it = m_by_path.find(path);
    if (it == m_by_path.end()) {
        return;
    }
    const int wd = it->second.wd;
    m_by_wd.erase(wd);
    m_by_path.erase(it);
    // EINVAL: the kernel already dropped it (the directory was deleted); nothing to undo.
    (void)::inotify_rm_watch(m_raw_fd, wd);
}

void DirWatcher::remove_under(const std::string& path) {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::string> doomed;
    for (auto it = m_by_path.lower_bound(path); it != m_by_path.end(); ++it) {
        std::string watched = it->first.str();
        if (watched.compare(0, path.size(), path) != 0) {
            break; // past every path that starts with `path`
        }
        if (path_is_under(watched, path)) {
            doomed.push_back(std::move(watched));
        }
    }
    for (const auto& p : doomed) {
        remove_locked(p);
    }
}

std::uint64_t DirWatcher::begin_marking() {
    std::lock_guard<std::mutex> lock(m_mutex);
    return ++m_mark;
}

void DirWatcher::drop_unmarked(std::uint64_t round) {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::string> extra;
    for (const auto& [path, watch] : m_by_path) {
        if (watch.mark != round) {
            extra.push_back(path.str());
        }
    }
    for (const auto& p : extra) {
        remove_locked(p);
    }
}

std::vector<std::string> DirWatcher::paths() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::string> out;
    out.reserve(m_by_path.size());
    for (const auto& [path, watch] : m_by_path) {
        out.push_back(path.str());
    }
    return out;
}

std::size_t DirWatcher::count() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_by_wd.size();
}

std::optional<WatchKind> DirWatcher::kind_of(const std::string& path) const {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_by_path.find(path);
    return it == m_by_path.end() ? std::nullopt : std::optional<WatchKind>(it->second.kind);
}

void DirWatcher::read_more() {
    if (!m_fd) {
        return;
    }
    m_fd->async_read_some(
        boost::asio::buffer(m_buffer.get(), m_buffer_size),
        [this](const boost::system::error_code& ec, std::size_t n) {
            if (ec == boost::asio::error::operation_aborted || !m_fd) {
                return;
            }
            if (ec) {
                // Should not happen on an inotify descriptor; treat as lost events.
                m_on_events({}, true);
                read_more();
                return;
            }
            bool overflow = false;
            std::vector<WatchEvent> events;
            {
                std::lock_guard<std::mutex> lock(m_mutex);
                for (auto& raw : parse_inotify_buffer(m_buffer.get(), n)) {
                    if ((raw.mask & IN_Q_OVERFLOW) != 0) {
                        overflow = true;
                        continue;
                    }
                    auto it = m_by_wd.find(raw.wd);
                    if (it == m_by_wd.end()) {
                        continue; // a watch we removed; its last events are of no use
                    }
                    WatchEvent ev;
                    ev.dir = it->second->first.str();
                    ev.kind = it->second->second.kind;
                    ev.name = std::move(raw.name);
                    ev.mask = raw.mask;
                    if ((raw.mask & IN_IGNORED) != 0) {
                        // The kernel dropped the watch (directory deleted, file system gone).
                        m_by_path.erase(it->second);
                        m_by_wd.erase(it);
                    }
                    events.push_back(std::move(ev));
                }
            }
            m_on_events(std::move(events), overflow);
            read_more();
        });
}

} // namespace agentlock::daemon
