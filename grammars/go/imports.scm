; Import declarations: @import.

(import_declaration) @import
