; Includes: @import.

(preproc_include) @import
