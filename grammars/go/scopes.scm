; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(function_declaration name: (identifier) @name) @scope.function
(method_declaration name: (field_identifier) @name) @scope.function
(func_literal) @scope.function
(type_spec name: (type_identifier) @name type: [(struct_type) (interface_type)]) @scope.class

(block) @block
(field_declaration_list) @block
(interface_type) @block
(literal_value) @block
(expression_switch_statement) @block
(type_switch_statement) @block
(select_statement) @block

(comment) @comment
(interpreted_string_literal) @string
(raw_string_literal) @string
(rune_literal) @string
