; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(method_declaration name: (identifier) @name) @scope.function
(constructor_declaration name: (identifier) @name) @scope.function
(compact_constructor_declaration name: (identifier) @name) @scope.function
(lambda_expression) @scope.function
(class_declaration name: (identifier) @name) @scope.class
(interface_declaration name: (identifier) @name) @scope.class
(enum_declaration name: (identifier) @name) @scope.class
(record_declaration name: (identifier) @name) @scope.class
(annotation_type_declaration name: (identifier) @name) @scope.class
(object_creation_expression (class_body)) @scope.class

(block) @block
(constructor_body) @block
(class_body) @block
(interface_body) @block
(enum_body) @block
(annotation_type_body) @block
(switch_block) @block
(array_initializer) @block

(line_comment) @comment
(block_comment) @comment
(string_literal) @string
(character_literal) @string
