; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(function_definition name: (identifier) @name) @scope.function
(class_definition name: (identifier) @name) @scope.class

(block) @block

(comment) @comment
(string) @string
