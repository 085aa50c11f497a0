; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(function_item name: (identifier) @name) @scope.function
(closure_expression) @scope.function
(impl_item type: (_) @name) @scope.class
(trait_item name: (type_identifier) @name) @scope.class
(struct_item name: (type_identifier) @name) @scope.class
(enum_item name: (type_identifier) @name) @scope.class
(union_item name: (type_identifier) @name) @scope.class

(block) @block
(declaration_list) @block
(field_declaration_list) @block
(enum_variant_list) @block
(match_block) @block

(line_comment) @comment
(block_comment) @comment
(string_literal) @string
(raw_string_literal) @string
(char_literal) @string
