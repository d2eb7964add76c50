#pragma once
// Interned paths: one copy of each worker path, however many tables name it. At fleet scale
// (100,000 workers) the daemon's tables would otherwise hold several copies of every path, and
// the copies would cost more than everything else they keep.

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace agentlock {

/// An immutable path (or other often repeated text, such as a tmux session name) shared through
/// a process-wide pool: every PathRef made from equal text points at the same storage, which is
/// freed with the last PathRef. Copies cost a pointer and an atomic increment. Thread-safe.
class PathRef {
public:
    PathRef() = default; ///< the empty path
    /// The pooled copy of `path` (made on first use).
    explicit PathRef(std::string_view path);
    PathRef(const char* path) : PathRef(std::string_view(path)) {}        // NOLINT: implicit
    PathRef(const std::string& path) : PathRef(std::string_view(path)) {} // NOLINT: implicit
    PathRef(const PathRef& other) noexcept;
    PathRef(PathRef&& other) noexcept : m_rep(other.m_rep) { other.m_rep = nullptr; }
    PathRef& operator=(const PathRef& other) noexcept;
    PathRef& operator=(PathRef&& other) noexcept;
    ~PathRef();

    std::string_view view() const noexcept;
    std::string str() const { return std::string(view()); }
    bool empty() const noexcept { return m_rep == nullptr; }
    operator std::string_view() const noexcept { return view(); }

    friend bool operator==(const PathRef& a, const PathRef& b) noexcept {
        return a.m_rep == b.m_rep; // pooled: equal text, same storage
    }
    friend bool operator==(const PathRef& a, std::string_view b) noexcept { return a.view() == b; }
    friend bool operator==(const PathRef& a, const char* b) noexcept { return a.view() == b; }
    friend bool operator==(const PathRef& a, const std::string& b) noexcept {
        return a.view() == b;
    }
    friend std::strong_ordering operator<=>(const PathRef& a, const PathRef& b) noexcept {
        return a.view() <=> b.view();
    }
    friend std::strong_ordering operator<=>(const PathRef& a, std::string_view b) noexcept {
        return a.view() <=> b;
    }
    friend std::ostream& operator<<(std::ostream& out, const PathRef& p) { return out << p.view(); }

    /// Paths in the pool now (for tests and benchmarks).
    static std::size_t pooled();

private:
    struct Rep;
    void release() noexcept;
    Rep* m_rep = nullptr;
};

/// Compares the text a1+a2 with b1+b2 (like std::string::compare) without building either:
/// for keys stored as a pooled base and a fixed suffix.
int compare_joined(std::string_view a1, std::string_view a2, std::string_view b1,
                   std::string_view b2) noexcept;

/// Orders PathRefs and strings alike, for maps with heterogeneous lookup.
struct PathLess {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a < b; }
};

} // namespace agentlock

template <> struct std::hash<agentlock::PathRef> {
    std::size_t operator()(const agentlock::PathRef& p) const noexcept {
        return std::hash<std::string_view>{}(p.view());
    }
};
