#pragma once
// Aligned text tables for terminals and pipes.

#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

/// One cell: its text (valid UTF-8) and, for terminals, an SGR colour code such as "31" (red);
/// an empty style is plain.
struct TableCell {
    std::string text;
    std::string style;
};

/// The rows laid out in columns two spaces apart, each as wide as its widest cell (counted in
/// code points), one line per row; the last column is not padded. With `colour`, styled cells are
/// wrapped in ANSI escapes (the padding stays outside them, so columns still line up).
std::string format_table(const std::vector<std::vector<TableCell>>& rows, bool colour);

/// The number of code points in `text`; each byte that is not valid UTF-8 counts as one.
std::size_t display_width(std::string_view text);

} // namespace agentlock
