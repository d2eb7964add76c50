#include <agentlock/path_ref.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>

namespace agentlock {

// One allocation a path: the count, the length, then the characters.
struct PathRef::Rep {
    std::atomic<std::uint32_t> refs{1};
    std::uint32_t size = 0;
    char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
    std::string_view view() noexcept { return {data(), size}; }
};

namespace {

struct RepHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

struct RepEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

// The pool holds views of the reps' own characters; a rep leaves it when its count reaches
// zero, under the mutex, so that no lookup can revive it meanwhile.
struct Pool {
    std::mutex mutex;
    std::unordered_set<std::string_view, RepHash, RepEq> paths;
};

Pool& pool() {
    static Pool* p = new Pool; // never destroyed: PathRefs may outlive static destructors
    return *p;
}

} // namespace

PathRef::PathRef(std::string_view path) {
    if (path.empty()) {
        return;
    }
    Pool& p = pool();
    const std::lock_guard lock(p.mutex);
    auto it = p.paths.find(path);
    if (it != p.paths.end()) {
        m_rep = reinterpret_cast<Rep*>(const_cast<char*>(it->data())) - 1;
        m_rep->refs.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    void* raw = std::malloc(sizeof(Rep) + path.size());
    if (raw == nullptr) {
        throw std::bad_alloc();
    }
    m_rep = new (raw) Rep;
    m_rep->size = static_cast<std::uint32_t>(path.size());
    std::memcpy(m_rep->data(), path.data(), path.size());
    p.paths.insert(m_rep->view());
}

PathRef::PathRef(const PathRef& other) noexcept : m_rep(other.m_rep) {
    if (m_rep != nullptr) {
        // `other` holds a count: the rep cannot leave the pool meanwhile.
        m_rep->refs.fetch_add(1, std::memory_order_relaxed);
    }
}

PathRef& PathRef::operator=(const PathRef& other) noexcept {
    if (this != &other) {
        PathRef copy(other);
        std::swap(m_rep, copy.m_rep);
    }
    return *this;
}

PathRef& PathRef::operator=(PathRef&& other) noexcept {
    if (this != &other) {
        release();
        m_rep = other.m_rep;
        other.m_rep = nullptr;
    }
    return *this;
}

PathRef::~PathRef() {
    release();
}

void PathRef::release() noexcept {
    if (m_rep == nullptr) {
        return;
    }
    Pool& p = pool();
    const std::lock_guard lock(p.mutex);
    if (m_rep->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        p.paths.erase(m_rep->view());
        m_rep->~Rep();
        std::free(m_rep);
    }
    m_rep = nullptr;
}

std::string_view PathRef::view() const noexcept {
    return m_rep == nullptr ? std::string_view{} : m_rep->view();
}

int compare_joined(std::string_view a1, std::string_view a2, std::string_view b1,
                   std::string_view b2) noexcept {
    const std::size_t na = a1.size() + a2.size();
    const std::size_t nb = b1.size() + b2.size();
    for (std::size_t i = 0; i < std::min(na, nb); ++i) {
        const char ca = i < a1.size() ? a1[i] : a2[i - a1.size()];
        const char cb = i < b1.size() ? b1[i] : b2[i - b1.size()];
        if (ca != cb) {
            return static_cast<unsigned char>(ca) < static_cast<unsigned char>(cb) ? -1 : 1;
        }
    }
    return na < nb ? -1 : (na > nb ? 1 : 0);
}

std::size_t PathRef::pooled() {
    Pool& p = pool();
    const std::lock_guard lock(p.mutex);
    return p.paths.size();
}

} // namespace agentlock
