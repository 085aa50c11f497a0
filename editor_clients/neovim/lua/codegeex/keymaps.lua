--- Insert-mode keys. Each key falls back to its usual meaning when no suggestion is shown, so
--- <Tab> still indents (an `expr` mapping returns the key itself then).
local config = require("codegeex.config")

local M = {}

local ACTIONS = {
  accept = { call = "accept('all')", desc = "accept the suggestion" },
  accept_word = { call = "accept('word')", desc = "accept the suggestion's next word" },
  accept_line = { call = "accept('line')", desc = "accept the suggestion's next line" },
  next = { call = "cycle(1)", desc = "next suggestion" },
  prev = { call = "cycle(-1)", desc = "previous suggestion" },
  dismiss = { call = "dismiss()", desc = "dismiss the suggestion" },
  trigger = { call = "request(nil, true)", desc = "suggest now", always = true },
}

M.mapped = {}

function M.setup()
  for _, lhs in ipairs(M.mapped) do
    pcall(vim.keymap.del, "i", lhs)
  end
  M.mapped = {}
  for name, lhs in pairs(config.options.keymaps) do
    local action = ACTIONS[name]
    if action and lhs then
      local rhs = "<Cmd>lua require('codegeex.suggestion')." .. action.call .. "<CR>"
      vim.keymap.set("i", lhs, function()
        if action.always or require("codegeex.suggestion").visible() then
          return rhs
        end
        return lhs
      end, { expr = true, silent = true, desc = "CodeGeeX: " .. action.desc })
      table.insert(M.mapped, lhs)
    end
  end
end

return M
