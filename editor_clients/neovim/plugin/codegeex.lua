-- Commands only; nothing starts until require("codegeex").setup() (or a :CodeGeeX command).
if vim.g.loaded_codegeex then
  return
end
vim.g.loaded_codegeex = true

local subcommands = {
  enable = function() require("codegeex").enable() end,
  disable = function() require("codegeex").disable() end,
  toggle = function() require("codegeex").toggle() end,
  status = function() require("codegeex").status() end,
  restart = function() require("codegeex").restart() end,
  log = function() require("codegeex").show_log() end,
}

vim.api.nvim_create_user_command("CodeGeeX", function(args)
  local name = args.fargs[1] or "status"
  local run = subcommands[name]
  if not run then
    vim.notify("codegeex: unknown subcommand " .. name, vim.log.levels.ERROR)
    return
  end
  run()
end, {
  nargs = "?",
  desc = "CodeGeeX: enable | disable | toggle | status | restart | log",
  complete = function(lead)
    return vim.tbl_filter(function(name)
      return vim.startswith(name, lead)
    end, vim.tbl_keys(subcommands))
  end,
})
