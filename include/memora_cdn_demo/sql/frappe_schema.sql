-- Frappe-compatible DDL for the tables the exporter reads (SPEC §2).
-- A real Frappe site has more columns and other column orders; the exporter names every column it
-- selects, so these tables are the minimum it needs. Used by the demo, the tests and the benchmarks.
-- Every content table has the standard Frappe columns; child tables also have parent/parentfield/parenttype.

CREATE TABLE IF NOT EXISTS `tabMemora Season` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Stream` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Grade` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Academic Plan` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  `season` varchar(140) DEFAULT NULL,
  `stream` varchar(140) DEFAULT NULL,
  `grade` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Plan Subject` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `parent` varchar(140) DEFAULT NULL, `parentfield` varchar(140) DEFAULT NULL, `parenttype` varchar(140) DEFAULT NULL,
  `subject` varchar(140) DEFAULT NULL,
  `sort_order` int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (`name`), KEY `parent` (`parent`), KEY `subject` (`subject`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Plan Override` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `parent` varchar(140) DEFAULT NULL, `parentfield` varchar(140) DEFAULT NULL, `parenttype` varchar(140) DEFAULT NULL,
  `target_doctype` varchar(140) DEFAULT NULL,
  `target_name` varchar(140) DEFAULT NULL,
  `action` varchar(140) DEFAULT NULL,
  `override_value` text DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `parent` (`parent`), KEY `target_name` (`target_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Subject` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  `description` text DEFAULT NULL,
  `image` text DEFAULT NULL,
  `is_published` int(1) NOT NULL DEFAULT 0,
  `is_free_preview` int(1) NOT NULL DEFAULT 0,
  `sort_order` int(11) NOT NULL DEFAULT 0,
  `color_code` varchar(140) DEFAULT NULL,
  `is_public` int(1) NOT NULL DEFAULT 0,
  `required_item` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Track` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  `description` text DEFAULT NULL,
  `image` text DEFAULT NULL,
  `is_published` int(1) NOT NULL DEFAULT 0,
  `is_free_preview` int(1) NOT NULL DEFAULT 0,
  `sort_order` int(11) NOT NULL DEFAULT 0,
  `parent_subject` varchar(140) DEFAULT NULL,
  `is_sold_separately` int(1) NOT NULL DEFAULT 0,
  `parent_item_required` int(1) NOT NULL DEFAULT 0,
  `required_item` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `parent_subject` (`parent_subject`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Unit` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  `description` text DEFAULT NULL,
  `image` text DEFAULT NULL,
  `is_published` int(1) NOT NULL DEFAULT 0,
  `is_free_preview` int(1) NOT NULL DEFAULT 0,
  `sort_order` int(11) NOT NULL DEFAULT 0,
  `parent_track` varchar(140) DEFAULT NULL,
  `badge_image` text DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `parent_track` (`parent_track`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Topic` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  `description` text DEFAULT NULL,
  `image` text DEFAULT NULL,
  `is_published` int(1) NOT NULL DEFAULT 0,
  `is_free_preview` int(1) NOT NULL DEFAULT 0,
  `sort_order` int(11) NOT NULL DEFAULT 0,
  `parent_unit` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `parent_unit` (`parent_unit`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Lesson` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `title` varchar(140) DEFAULT NULL,
  `description` text DEFAULT NULL,
  `image` text DEFAULT NULL,
  `is_published` int(1) NOT NULL DEFAULT 0,
  `is_free_preview` int(1) NOT NULL DEFAULT 0,
  `sort_order` int(11) NOT NULL DEFAULT 0,
  `parent_topic` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `parent_topic` (`parent_topic`), KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabMemora Lesson Stage` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `parent` varchar(140) DEFAULT NULL, `parentfield` varchar(140) DEFAULT NULL, `parenttype` varchar(140) DEFAULT NULL,
  `title` varchar(140) DEFAULT NULL,
  `type` varchar(140) DEFAULT NULL,
  `config` longtext DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `parent` (`parent`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabCDN Sync Log` (
  `name` varchar(140) NOT NULL, `creation` datetime(6) DEFAULT NULL, `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL, `owner` varchar(140) DEFAULT NULL, `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `plan_id` varchar(140) DEFAULT NULL,
  `status` varchar(140) DEFAULT NULL,
  `started_at` datetime(6) DEFAULT NULL,
  `completed_at` datetime(6) DEFAULT NULL,
  `files_uploaded` int(11) NOT NULL DEFAULT 0,
  `files_deleted` int(11) NOT NULL DEFAULT 0,
  `error_message` longtext DEFAULT NULL,
  `retry_count` int(11) NOT NULL DEFAULT 0,
  `next_retry_at` datetime(6) DEFAULT NULL,
  `is_fallback` int(1) NOT NULL DEFAULT 0,
  `triggered_by` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`), KEY `plan_id` (`plan_id`), KEY `status` (`status`), KEY `creation` (`creation`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
