#include <agentlock/text.hpp>

#include <cstdint>

namespace agentlock {

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
    const std::uint8_t b0 = byte(i);
    if (b0 < 0x80) {
        return 1;
    }
    std::size_t len = 0;
    std::uint8_t lo = 0x80;
    std::uint8_t hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        lo = b0 == 0xE0 ? 0xA0 : 0x80; // no overlong forms
        hi = b0 == 0xED ? 0x9F : 0xBF; // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        lo = b0 == 0xF0 ? 0x90 : 0x80;
        hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (i + len > text.size()) {
        return 0;
    }
    if (byte(i + 1) < lo || byte(i + 1) > hi) {
        return 0;
    }
    for (std::size_t k = 2; k < len; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) {
            return 0;
        }
    }
    return len;
}

namespace {

// `text` with each byte outside valid UTF-8 sequences given to `invalid`, which appends what
// stands for it.
template <typename Invalid> std::string map_invalid_utf8(std::string_view text, Invalid invalid) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t len = utf8_sequence_length(text, i);
        if (len == 0) {
            invalid(out, static_cast<unsigned char>(text[i]));
            ++i;
        } else {
            out.append(text.substr(i, len));
            i += len;
        }
    }
    return out;
}

} // namespace

std::string to_valid_utf8(std::string_view text) {
    return map_invalid_utf8(text, [](std::string& out, unsigned char) { out += "\xEF\xBF\xBD"; });
}

std::string escape_invalid_utf8(std::string_view text) {
    return map_invalid_utf8(text, [](std::string& out, unsigned char c) {
        static constexpr char k_hex[] = "0123456789abcdef";
        out += "\\x";
        out += k_hex[c >> 4];
        out += k_hex[c & 0xF];
    });
}

} // namespace agentlock
