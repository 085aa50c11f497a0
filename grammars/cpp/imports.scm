; Includes, using-declarations and imports: @import.

(preproc_include) @import
(using_declaration) @import
