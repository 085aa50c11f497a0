; Class definitions: @definition.class with its @name.

(class_declaration name: (identifier) @name) @definition.class
