; Use declarations and external crates: @import.

(use_declaration) @import
(extern_crate_declaration) @import
