-- Unit tests of the plugin's pure parts (config, text), run headless: nvim -l tests/units.lua
-- Prints one line per case and "N passed, N failed"; exits non-zero on a failure.
local root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
vim.opt.rtp:prepend(root)

local passed, failed = 0, 0
local function case(name, fn)
  local ok, err = pcall(fn)
  if ok then
    passed = passed + 1
    io.write("ok   " .. name .. "\n")
  else
    failed = failed + 1
    io.write("FAIL " .. name .. ": " .. tostring(err) .. "\n")
  end
end
local function eq(actual, expected)
  if not vim.deep_equal(actual, expected) then
    error(("expected %s, got %s"):format(vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

local config = require("codegeex.config")
local text = require("codegeex.text")

case("config: no options are the defaults", function()
  local options, warnings = config.resolve(nil)
  eq(options, config.defaults)
  eq(warnings, {})
end)

case("config: valid options are taken, nested tables merged", function()
  local options, warnings = config.resolve({
    debounce_ms = 10,
    model = "m.gguf",
    max_tokens = 32,
    server = { cmd = { "python", "-m", "codegeex_lsp.cli" }, args = { "--threads", "2" } },
    keymaps = { accept_word = false, next = "<M-n>" },
    filetypes = { lua = false },
  })
  eq(warnings, {})
  eq(options.debounce_ms, 10)
  eq(options.server.cmd, { "python", "-m", "codegeex_lsp.cli" })
  eq(options.server.root_markers, config.defaults.server.root_markers)
  eq(options.keymaps.accept, "<Tab>")
  eq(options.keymaps.accept_word, false)
  eq(options.keymaps.next, "<M-n>")
  eq(options.filetypes.lua, false)
  eq(options.filetypes["*"], true)
end)

case("config: bad values fall back with one warning each", function()
  local options, warnings = config.resolve({
    enabled = "yes",
    debounce_ms = -5,
    max_tokens = 0,
    model = 3,
    server = "codegeex-lsp",
    keymaps = { accept = 1 },
    filetypes = { lua = "no" },
    colour = "red",
  })
  eq(options.enabled, true)
  eq(options.debounce_ms, 75)
  eq(options.max_tokens, nil)
  eq(options.model, nil)
  eq(options.server, config.defaults.server)
  eq(options.keymaps.accept, "<Tab>")
  eq(options.filetypes.lua, nil)
  eq(#warnings, 8)
end)

case("config: filetypes use their own entry, else the wildcard", function()
  config.setup({ filetypes = { ["*"] = false, python = true } })
  eq(config.filetype_enabled("python"), true)
  eq(config.filetype_enabled("lua"), false)
  config.setup({})
  eq(config.filetype_enabled("lua"), true)
  eq(config.filetype_enabled("markdown"), false)
end)

case("config: server options turn the server's debounce off and carry the model", function()
  config.setup({ model = "x", max_tokens = 20, server_options = { context = { prefixTokens = 64 } } })
  eq(config.server_options(), {
    debounce = { minMs = 0, maxMs = 0, initialMs = 0 },
    completion = { maxTokens = 20 },
    model = { name = "x", quant = "int4" },
    context = { prefixTokens = 64 },
  })
  config.setup({})
  eq(config.server_options().completion.maxTokens, vim.NIL)
  eq(config.server_options().model, { quant = "int4" })
  config.setup({ quant = "none" })
  eq(config.server_options().model, { quant = "none" })
end)

local at = { line = 3, character = 8 }
case("text: an item at the cursor is shown whole; empty ones are dropped", function()
  local result = { items = { { insertText = "a + b" }, { insertText = "" }, { insertText = { kind = "snippet", value = "x" } } } }
  eq(text.ghost_texts(result, "    ret", 7, at, "utf-8"), { "a + b", "x" })
  eq(text.ghost_texts({ { insertText = "y" } }, "", 0, at, "utf-8"), { "y" })
  eq(text.ghost_texts({ items = {} }, "", 0, at, "utf-8"), {})
  eq(text.ghost_texts(nil, "", 0, at, "utf-8"), {})
end)

case("text: a range from the word start repeats the typed part, which is dropped", function()
  local cursor = { line = 3, character = 7 }
  local item = { insertText = "return a", range = { start = { line = 3, character = 4 }, ["end"] = cursor } }
  eq(text.ghost_texts({ item }, "    ret", 7, cursor, "utf-8"), { "urn a" })
  item.insertText = "print" -- does not repeat what is typed: left out
  eq(text.ghost_texts({ item }, "    ret", 7, cursor, "utf-8"), {})
  item.insertText, item.range.start = "return a", { line = 2, character = 0 } -- another line
  eq(text.ghost_texts({ item }, "    ret", 7, cursor, "utf-8"), {})
end)

case("text: a range over the closing paren after the cursor drops it from the end", function()
  local item = { insertText = "a, b)", range = { start = { line = 0, character = 4 }, ["end"] = { line = 0, character = 5 } } }
  eq(text.ghost_texts({ item }, "add()", 4, { line = 0, character = 4 }, "utf-8"), { "a, b" })
end)

case("text: UTF-16 columns after non-ASCII text map to bytes", function()
  local line = "s = 'é😀' + "
  eq(text.byte_col(line, 8, "utf-16"), 11) -- é: 1 unit, 2 bytes; 😀: 2 units, 4 bytes
  eq(text.byte_col(line, 8, "utf-8"), 8)
  eq(text.byte_col(line, 99, "utf-16"), #line)
end)

case("text: next word takes blanks plus a word or a punctuation run", function()
  eq(text.next_word("foo(bar)"), "foo")
  eq(text.next_word("  bar baz"), "  bar")
  eq(text.next_word("(a, b)"), "(")
  eq(text.next_word(" += 1"), " +=")
  eq(text.next_word("\n    return x"), "\n    ")
  eq(text.next_word("   "), "   ")
end)

case("text: next line takes up to the break, or the break and the next line", function()
  eq(text.next_line("if x:\n    y"), "if x:")
  eq(text.next_line("\n    y\nz"), "\n    y")
  eq(text.next_line("tail"), "tail")
end)

io.write(("%d passed, %d failed\n"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
